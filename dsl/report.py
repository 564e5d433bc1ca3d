"""Renderers for semantic diffs (``dsl.diff.DiffResult``) and impact reports (``dsl.impact.ImpactReport``).

``render_diff(result, fmt, lang, color)``: ``text`` (a terminal view; ANSI colours only when asked,
which the CLI does when standard output is a terminal), ``json`` (the list of changes), ``markdown``,
``html`` (one self-contained page: old and new side by side, with the source lines of both files).

``render_impact(report, fmt, lang, color)``: ``text``, ``json`` (with a ``subjects`` list and a
``transitions`` table), ``csv`` and ``html`` (self-contained, with an inline SVG chart of the score
changes).

Labels of definitions and grades are shown in the requested language (kk, ru or en, falling back to
another language when a label is missing); the html pages translate their headings too. Numbers
are printed exactly (``dsl.decimals.format_decimal``); long fractions are shortened with "…" only in
the text and html tables, never in json or csv.
"""

from __future__ import annotations

import csv
import difflib
import html
import io
import re
from decimal import ROUND_HALF_EVEN, Decimal

from . import decimals
from .decimals import format_decimal
from .diff import Change, DiffResult, SourceRef
from .evaluate import label_of
from .impact import ImpactReport, SubjectImpact

DIFF_FORMATS = ("text", "json", "markdown", "html")
IMPACT_FORMATS = ("text", "json", "csv", "html")

# ---------------------------------------------------------------- words of the pages

WORDS: dict[str, dict[str, str]] = {
    "diff_title": {"en": "Semantic diff of methodology versions", "ru": "Смысловое сравнение версий методики",
                   "kk": "Әдістеме нұсқаларын мағыналық салыстыру"},
    "impact_title": {"en": "Impact of the change on scores", "ru": "Влияние изменений на оценки",
                     "kk": "Өзгерістердің бағалауға әсері"},
    "old": {"en": "Old version", "ru": "Прежняя версия", "kk": "Бұрынғы нұсқа"},
    "new": {"en": "New version", "ru": "Новая версия", "kk": "Жаңа нұсқа"},
    "added": {"en": "added", "ru": "добавлено", "kk": "қосылды"},
    "removed": {"en": "removed", "ru": "удалено", "kk": "алынып тасталды"},
    "changed": {"en": "changed", "ru": "изменено", "kk": "өзгертілді"},
    "changes": {"en": "changes", "ru": "изменений", "kk": "өзгеріс"},
    "no_changes": {"en": "The two versions mean the same: no change.", "ru": "Версии совпадают по смыслу: изменений нет.",
                   "kk": "Екі нұсқаның мағынасы бірдей: өзгеріс жоқ."},
    "status": {"en": "Status", "ru": "Статус", "kk": "Мәртебесі"},
    "effective": {"en": "In force", "ru": "Действует", "kk": "Қолданылу мерзімі"},
    "basis": {"en": "Legal basis", "ru": "Основание", "kk": "Құқықтық негізі"},
    "subjects_kinds": {"en": "Subject kinds", "ru": "Виды субъектов", "kk": "Субъект түрлері"},
    "file": {"en": "File", "ru": "Файл", "kk": "Файл"},
    "what": {"en": "What changed", "ru": "Что изменилось", "kk": "Не өзгерді"},
    "source": {"en": "Source", "ru": "Исходный текст", "kk": "Бастапқы мәтін"},
    "for_kinds": {"en": "applies to", "ru": "относится к", "kk": "қолданылады"},
    "contents": {"en": "Contents", "ru": "Содержание", "kk": "Мазмұны"},
    "not_in_version": {"en": "not in this version", "ru": "нет в этой версии", "kk": "бұл нұсқада жоқ"},
    "from": {"en": "from {d}", "ru": "с {d}", "kk": "{d} бастап"},
    "to": {"en": "to {d}", "ru": "по {d}", "kk": "{d} дейін"},
    "open": {"en": "open-ended", "ru": "бессрочно", "kk": "мерзімсіз"},
    "subjects": {"en": "Subjects", "ru": "Субъекты", "kk": "Субъектілер"},
    "scored_both": {"en": "scored under both", "ru": "рассчитано по обеим версиям", "kk": "екі нұсқа бойынша есептелді"},
    "failed": {"en": "failed", "ru": "не рассчитано", "kk": "есептелмеді"},
    "transitions": {"en": "Grade transitions", "ru": "Переходы между оценками", "kk": "Баға деңгейлерінің ауысуы"},
    "rows_cols": {"en": "rows: grade under the old version; columns: under the new",
                  "ru": "строки — оценка по прежней версии, столбцы — по новой",
                  "kk": "жолдар — бұрынғы нұсқа бойынша баға, бағандар — жаңа нұсқа бойынша"},
    "chart": {"en": "Score changes", "ru": "Изменение баллов", "kk": "Балдардың өзгеруі"},
    "chart_note": {"en": "each line runs from the old score (hollow) to the new (filled); dashed lines are grade thresholds",
                   "ru": "линия идёт от прежнего балла (пустой кружок) к новому (закрашенный); пунктир — границы оценок",
                   "kk": "сызық бұрынғы балдан (бос дөңгелек) жаңа балға (толық дөңгелек) дейін; үзік сызықтар — баға шекаралары"},
    "movers": {"en": "Largest movers", "ru": "Наибольшие изменения", "kk": "Ең көп өзгергендер"},
    "all_subjects": {"en": "All subjects", "ru": "Все субъекты", "kk": "Барлық субъектілер"},
    "failures": {"en": "Subjects that could not be scored", "ru": "Субъекты, которые не удалось оценить",
                 "kk": "Бағаланбаған субъектілер"},
    "id": {"en": "Subject", "ru": "Субъект", "kk": "Субъект"},
    "kind": {"en": "Kind", "ru": "Вид", "kk": "Түрі"},
    "delta": {"en": "Difference", "ru": "Разница", "kk": "Айырма"},
    "grade": {"en": "Grade", "ru": "Оценка", "kk": "Баға"},
    "rank": {"en": "Rank", "ru": "Место", "kk": "Орын"},
    "error": {"en": "Error", "ru": "Ошибка", "kk": "Қате"},
    "version": {"en": "Version", "ru": "Версия", "kk": "Нұсқа"},
    "up": {"en": "up", "ru": "выросло", "kk": "өсті"},
    "down": {"en": "down", "ru": "снизилось", "kk": "төмендеді"},
    "same": {"en": "unchanged", "ru": "без изменений", "kk": "өзгеріссіз"},
    "grade_changed": {"en": "grade changed", "ru": "оценка изменилась", "kk": "баға өзгерді"},
    "mean": {"en": "mean difference", "ru": "средняя разница", "kk": "орташа айырма"},
    "notes": {"en": "Notes", "ru": "Примечания", "kk": "Ескертпелер"},
    "synthetic": {"en": "synthetic", "ru": "синтетические данные", "kk": "синтетикалық деректер"},
    "shown": {"en": "shown: the {n} largest changes of {total}", "ru": "показаны {n} наибольших изменений из {total}",
              "kk": "{total} ішінен ең үлкен {n} өзгеріс көрсетілген"},
}

THINGS: dict[str, dict[str, str]] = {
    "metadata": {"en": "metadata", "ru": "метаданные", "kk": "метадеректер"},
    "input": {"en": "input", "ru": "исходные данные", "kk": "бастапқы дерек"},
    "record": {"en": "record", "ru": "запись", "kk": "жазба"},
    "param": {"en": "parameter", "ru": "параметр", "kk": "параметр"},
    "indicator": {"en": "indicator", "ru": "показатель", "kk": "көрсеткіш"},
    "criterion": {"en": "criterion", "ru": "критерий", "kk": "критерий"},
    "direction": {"en": "direction", "ru": "направление", "kk": "бағыт"},
    "score": {"en": "score", "ru": "итоговая оценка", "kk": "қорытынды балл"},
    "bonus": {"en": "bonus", "ru": "бонус", "kk": "бонус"},
    "penalty": {"en": "penalty", "ru": "штраф", "kk": "айыппұл"},
    "coefficient": {"en": "coefficient", "ru": "коэффициент", "kk": "коэффициент"},
    "value": {"en": "value", "ru": "значение", "kk": "мән"},
    "table": {"en": "band table", "ru": "таблица интервалов", "kk": "аралықтар кестесі"},
    "grade": {"en": "grade scale", "ru": "шкала оценок", "kk": "баға шкаласы"},
    "constraint": {"en": "constraint", "ru": "ограничение", "kk": "шектеу"},
    "helper": {"en": "helper", "ru": "вспомогательная функция", "kk": "көмекші функция"},
}

FIELDS: dict[str, dict[str, str]] = {
    "formula": {"ru": "формула", "kk": "формула"},
    "constant": {"ru": "константа", "kk": "тұрақты сан"},
    "weight": {"ru": "вес", "kk": "салмақ"},
    "weight term": {"ru": "слагаемое с весом", "kk": "салмақты қосылғыш"},
    "max": {"ru": "максимум", "kk": "ең жоғары мәні"},
    "min": {"ru": "минимум", "kk": "ең төмен мәні"},
    "label": {"ru": "название", "kk": "атауы"},
    "band": {"ru": "интервал", "kk": "аралық"},
    "band label": {"ru": "название оценки", "kk": "баға атауы"},
    "bounds": {"ru": "границы", "kk": "шектері"},
    "type": {"ru": "тип", "kk": "түрі"},
    "unit": {"ru": "единица", "kk": "өлшем бірлігі"},
    "kind": {"ru": "вид", "kk": "түрі"},
    "rounding": {"ru": "округление", "kk": "дөңгелектеу"},
    "default": {"ru": "по умолчанию", "kk": "әдепкі мәні"},
    "optional": {"ru": "необязательное", "kk": "міндетті емес"},
    "value": {"ru": "значение", "kk": "мәні"},
    "title": {"ru": "название", "kk": "атауы"},
    "basis": {"ru": "основание", "kk": "құқықтық негізі"},
    "status": {"ru": "статус", "kk": "мәртебесі"},
    "effective_from": {"ru": "действует с", "kk": "күшіне енеді"},
    "effective_to": {"ru": "действует по", "kk": "қолданылуы аяқталады"},
    "subjects": {"ru": "виды субъектов", "kk": "субъект түрлері"},
    "extends": {"ru": "изменяет версию", "kk": "өзгертетін нұсқа"},
    "methodology": {"ru": "методика", "kk": "әдістеме"},
    "field": {"ru": "поле", "kk": "өріс"},
}


def word(key: str, lang: str) -> str:
    w = WORDS[key]
    return w.get(lang) or w["en"]


def thing_word(thing: str, lang: str) -> str:
    return THINGS.get(thing, {}).get(lang) or THINGS.get(thing, {}).get("en") or thing


def field_word(fld: str, lang: str) -> str:
    return FIELDS.get(fld, {}).get(lang) or fld


# ---------------------------------------------------------------- helpers


def short(d: Decimal | None, places: int = 4) -> str:
    """A number for reading: exact when it has at most ``places`` decimals, else cut with "…"."""
    if d is None:
        return "—"
    text = format_decimal(d)
    if "." in text:
        whole, frac = text.split(".", 1)
        if len(frac) > places:
            frac = frac.rstrip("0")  # 2.000…0 from an exact division is 2
            if len(frac) > places:
                return f"{whole}.{frac[:places]}…"
            return f"{whole}.{frac}" if frac else whole
    return text


def signed(d: Decimal | None, places: int = 4) -> str:
    if d is None:
        return "—"
    text = short(d, places)
    return text if text.startswith("-") or d == 0 else "+" + text


_TOKEN = re.compile(r"\d+(?:\.\d+)?|[A-Za-z_\u0400-\u04FF][\w\u0400-\u04FF]*|\s+|.", re.UNICODE)


def token_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """(op, text) pieces: op is ``=`` (both), ``-`` (only old) or ``+`` (only new).

    When the two texts have little in common (a rewritten legal basis), the whole old text is one
    ``-`` piece and the whole new text one ``+`` piece: marking scattered words would not help.
    """
    a = _TOKEN.findall(old or "")
    b = _TOKEN.findall(new or "")
    out: list[tuple[str, str]] = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if a and b and sm.ratio() < 0.5:
        return [("-", old or ""), ("+", new or "")]
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(("=", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
    return out


def _where(s: SourceRef | None) -> str:
    return str(s) if s else "—"


def _kinds_text(c: Change, all_kinds: list[str]) -> str:
    """"" when a change applies to every subject kind, else the kinds it applies to."""
    if sorted(c.kinds) == sorted(all_kinds):
        return ""
    return ", ".join(c.kinds) + " only"


def _all_kinds(result: DiffResult) -> list[str]:
    return sorted(set(result.old.subjects) | set(result.new.subjects))


def _version_line(v, lang: str) -> str:
    eff = ""
    if v.effective_from:
        eff = f", in force from {v.effective_from}" + (f" to {v.effective_to}" if v.effective_to else "")
    ext = f", extends {v.extends}" if v.extends else ""
    return f"{v.key} — {label_of(v.title, lang, v.key)} [{v.status}{eff}{ext}] {v.path}"


def _group_title(thing: str, name: str, changes: list[Change], lang: str) -> str:
    if thing == "metadata":
        return "metadata"
    label = label_of(changes[0].labels, lang, "")
    return f"{thing} {name}" + (f" — {label}" if label and label != name else "")


def _group_op(changes: list[Change]) -> str:
    whole = [c for c in changes if not c.field]
    return whole[0].op if whole else "changed"


# ---------------------------------------------------------------- diff: text


class _Ansi:
    def __init__(self, on: bool):
        self.on = on

    def __call__(self, text: str, *codes: str) -> str:
        if not self.on or not codes:
            return text
        table = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36",
                 "rev_red": "41;97", "rev_green": "42;30"}
        return "\033[" + ";".join(table[c] for c in codes) + "m" + text + "\033[0m"


def _inline(c: _Ansi, old: str | None, new: str | None) -> tuple[str, str]:
    """Old and new text with the differing tokens marked (colour, or [-…-] {+…+} without colour)."""
    if old is None or new is None:
        return (old or "", new or "")
    pieces = token_diff(old, new)
    if not any(op == "=" for op, _ in pieces):
        return old, new  # nothing in common: the -/+ lines say it all
    a, b = [], []
    for op, text in pieces:
        if op == "=":
            a.append(text)
            b.append(text)
        elif op == "-":
            a.append(c(text, "rev_red") if c.on else f"[-{text}-]")
        else:
            b.append(c(text, "rev_green") if c.on else f"{{+{text}+}}")
    return "".join(a), "".join(b)


def diff_text(result: DiffResult, lang: str = "kk", color: bool = False) -> str:
    c = _Ansi(color)
    out = []
    counts = result.counts()
    out.append(c(f"Semantic diff {result.old.key} → {result.new.key}", "bold"))
    out.append(f"  old: {_version_line(result.old, lang)}")
    out.append(f"  new: {_version_line(result.new, lang)}")
    total = sum(counts.values())
    out.append(f"  {total} change{'s' if total != 1 else ''}: {counts['added']} added, {counts['removed']} removed, "
               f"{counts['changed']} changed")
    if not result.changes:
        out.append("")
        out.append("  The two versions mean the same: no change.")
        return "\n".join(out) + "\n"
    kinds = _all_kinds(result)
    sign = {"added": c("+", "green", "bold"), "removed": c("-", "red", "bold"), "changed": c("~", "yellow", "bold")}
    for (thing, name), changes in result.groups():
        out.append("")
        op = _group_op(changes)
        title = _group_title(thing, name, changes, lang)
        k = _kinds_text(changes[0], kinds) if thing != "metadata" else ""
        out.append(f"{sign[op]} {c(title, 'bold')}" + (c(f"  (for {k})", "cyan") if k else ""))
        for ch in changes:
            out.extend(_text_change(c, ch, kinds, thing == "metadata"))
    return "\n".join(out) + "\n"


def _text_change(c: _Ansi, ch: Change, kinds: list[str], metadata: bool) -> list[str]:
    lines = []
    src = c(f"{_where(ch.old_source)} → {_where(ch.new_source)}" if ch.op == "changed" else
            _where(ch.new_source if ch.op == "added" else ch.old_source), "dim")
    k = _kinds_text(ch, kinds)
    kind_note = c(f" (for {k})", "cyan") if k else ""
    if not ch.field:  # a whole thing added or removed
        text = ch.new if ch.op == "added" else ch.old
        colour = "green" if ch.op == "added" else "red"
        lines.append(f"    {ch.op}  {src}{kind_note}")
        lines.append(f"      {c(('+ ' if ch.op == 'added' else '- ') + (text or ''), colour)}")
    else:
        label = ch.field + (f" [{ch.part}]" if ch.part and ch.field != "constant" else "")
        if ch.field in ("constant", "weight") and ch.op == "changed":
            where = f"  in {ch.part}" if ch.field == "constant" else f"  of {ch.part}"
            lines.append(f"    {c(ch.field, 'bold')} {c(ch.old or '', 'red')} → {c(ch.new or '', 'green')}{where}  {src}{kind_note}")
        elif ch.op == "changed" and (len(ch.old or "") + len(ch.new or "") > 60 or ch.field == "formula"):
            a, b = _inline(c, ch.old, ch.new)
            lines.append(f"    {c(label, 'bold')}  {src}{kind_note}" + (c(f"  ({ch.note})", "dim") if ch.note else ""))
            lines.append(f"      {c('-', 'red')} {a}")
            lines.append(f"      {c('+', 'green')} {b}")
            return lines
        elif ch.op == "changed":
            lines.append(f"    {c(label, 'bold')}: {c(ch.old or '', 'red')} → {c(ch.new or '', 'green')}  {src}{kind_note}")
        elif ch.op == "added":
            lines.append(f"    {c(label, 'bold')} added: {c(ch.new or '', 'green')}  {src}{kind_note}")
        else:
            lines.append(f"    {c(label, 'bold')} removed: {c(ch.old or '', 'red')}  {src}{kind_note}")
    if ch.note:
        lines.append(c(f"      note: {ch.note}", "dim"))
    return lines


# ---------------------------------------------------------------- diff: json, markdown


def diff_json(result: DiffResult) -> str:
    """The list of changes (see ``Change.to_json``)."""
    return decimals.dumps([c.to_json() for c in result.changes], indent=2) + "\n"


def _md(text: str | None) -> str:
    if text is None:
        return "—"
    return text.replace("|", "\\|").replace("\n", "<br>")


def _code(text: str | None) -> str:
    if text is None:
        return "—"
    t = text.replace("|", "\\|").replace("\n", " ")
    return f"``{t}``" if "`" in t else f"`{t}`"


def diff_markdown(result: DiffResult, lang: str = "kk") -> str:
    counts = result.counts()
    out = [f"# Semantic diff: `{result.old.key}` → `{result.new.key}`", ""]
    out += ["| | Old | New |", "|---|---|---|"]
    o, n = result.old, result.new
    rows = [("Title", label_of(o.title, lang, o.key), label_of(n.title, lang, n.key)),
            ("Status", o.status, n.status),
            ("In force", _period(o), _period(n)),
            ("Subject kinds", ", ".join(o.subjects), ", ".join(n.subjects)),
            ("File", f"`{o.path}`", f"`{n.path}`")]
    out += [f"| {a} | {_md(b)} | {_md(c)} |" for a, b, c in rows]
    out += ["", f"**{sum(counts.values())} changes**: {counts['added']} added, {counts['removed']} removed, "
                f"{counts['changed']} changed.", ""]
    kinds = _all_kinds(result)
    for (thing, name), changes in result.groups():
        op = _group_op(changes)
        if thing == "metadata":
            out.append("## Metadata")
        else:
            label = label_of(changes[0].labels, lang, "")
            k = _kinds_text(changes[0], kinds)
            out.append(f"## {thing} `{name}`" + (f" — {label}" if label and label != name else "") + f" ({op}"
                       + (f"; for {k}" if k else "") + ")")
        out += ["", "| What | Old | New | Source (old → new) |", "|---|---|---|---|"]
        for ch in changes:
            what = (ch.field or ch.op) + (f" [{ch.part}]" if ch.part else "")
            if ch.field and ch.op != "changed":
                what += f" ({ch.op})"
            k = _kinds_text(ch, kinds)
            if k and thing != "metadata":
                what += f" — for {k}"
            code = ch.field in ("formula", "constant", "weight", "weight term", "band", "bounds", "type", "default", "") \
                and thing != "metadata"
            fmt = _code if code else _md
            out.append(f"| {_md(what)} | {fmt(ch.old)} | {fmt(ch.new)} | {_where(ch.old_source)} → {_where(ch.new_source)} |")
            if ch.note:
                out.append(f"| | *{_md(ch.note)}* | | |")
        out.append("")
    return "\n".join(out)


def _period(v) -> str:
    if not v.effective_from:
        return "—"
    return f"{v.effective_from} – {v.effective_to or 'open'}"


# ---------------------------------------------------------------- diff: html

_CSS = """
:root { --old: #fdecea; --old-strong: #f5b5ae; --new: #e8f5e9; --new-strong: #9fd8a3; --ink: #1d2433; --muted: #5b6478;
        --line: #d9dde6; --accent: #1f5fa8; --chg: #fff6d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 "Segoe UI", "Noto Sans", "DejaVu Sans", Arial, sans-serif; color: var(--ink); background: #f4f6fa; }
header.page { background: #14365f; color: #fff; padding: 18px 28px; }
header.page h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header.page .sub { opacity: .85; font-size: 14px; }
main { padding: 18px 28px 40px; max-width: 1500px; margin: 0 auto; }
.versions { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin-bottom: 16px; }
.vcard { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.vcard.old { border-top: 5px solid #c0392b; } .vcard.new { border-top: 5px solid #2e7d32; }
.vcard h2 { margin: 0 0 6px; font-size: 16px; } .vcard h2 code { font-size: 15px; }
.vcard dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; font-size: 13.5px; }
.vcard dt { color: var(--muted); } .vcard dd { margin: 0; }
.summary { display: flex; gap: 10px; flex-wrap: wrap; align-items: center; margin: 10px 0 18px; }
.chip { border-radius: 14px; padding: 3px 12px; font-size: 13.5px; font-weight: 600; border: 1px solid var(--line); background: #fff; }
.chip.added { background: var(--new); border-color: var(--new-strong); } .chip.removed { background: var(--old); border-color: var(--old-strong); }
.chip.changed { background: var(--chg); border-color: #eed47a; }
nav.toc { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; margin-bottom: 18px; font-size: 14px; }
nav.toc ol { margin: 4px 0 0; padding-left: 22px; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
section.item { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px; overflow: hidden; }
section.item > h3 { margin: 0; padding: 10px 16px; font-size: 16px; background: #f0f3f8; border-bottom: 1px solid var(--line);
                    display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.badge { font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .04em; padding: 2px 8px; border-radius: 4px; }
.badge.added { background: #2e7d32; color: #fff; } .badge.removed { background: #c0392b; color: #fff; } .badge.changed { background: #b8860b; color: #fff; }
.thing { color: var(--muted); font-weight: 500; } .label { font-weight: 500; } .kinds { color: var(--accent); font-size: 13px; }
table.changes { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.changes th, table.changes td { border-top: 1px solid var(--line); padding: 6px 10px; vertical-align: top; text-align: left; font-size: 14px; }
table.changes th { background: #fafbfd; color: var(--muted); font-weight: 600; font-size: 13px; }
table.changes col.what { width: 17%; } table.changes col.val { width: 41.5%; }
td.old { background: var(--old); } td.new { background: var(--new); } td.empty { background: #f7f7f7; color: var(--muted); font-style: italic; }
.mono, td.code { font-family: "DejaVu Sans Mono", "Consolas", monospace; font-size: 13px; white-space: pre-wrap; word-break: break-word; }
del { background: var(--old-strong); text-decoration: line-through; text-decoration-color: #8e2a20; border-radius: 2px; }
ins { background: var(--new-strong); text-decoration: none; font-weight: 700; border-radius: 2px; }
.where { color: var(--muted); font-size: 12px; display: block; margin-top: 3px; font-family: "DejaVu Sans Mono", monospace; }
.note { color: var(--muted); font-style: italic; font-size: 13px; }
.sources { display: grid; grid-template-columns: 1fr 1fr; border-top: 1px solid var(--line); }
.sources > div { min-width: 0; } .sources > div + div { border-left: 1px solid var(--line); }
.sources h4 { margin: 0; padding: 5px 10px; font-size: 12px; color: var(--muted); font-weight: 600; background: #fafbfd; border-bottom: 1px solid var(--line); }
pre.src { margin: 0; padding: 6px 0; font: 12.5px/1.5 "DejaVu Sans Mono", Consolas, monospace; white-space: pre-wrap; word-break: break-word; }
pre.src > span { padding-left: 4.3em; text-indent: -4.3em; }
pre.src span.ln { display: inline-block; width: 3.5em; margin-right: .8em; text-align: right; color: #9aa1b1; user-select: none; text-indent: 0; }
pre.src .hl-old { background: var(--old); display: block; } pre.src .hl-new { background: var(--new); display: block; }
pre.src .plain { display: block; }
.absent { padding: 10px; color: var(--muted); font-style: italic; font-size: 13px; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
@media print { body { background: #fff; } section.item { break-inside: avoid; } }
"""


def _h(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _html_inline(old: str | None, new: str | None) -> tuple[str, str]:
    if old is None or new is None:
        return _h(old), _h(new)
    pieces = token_diff(old, new)
    if not any(op == "=" for op, _ in pieces):
        return _h(old), _h(new)
    a, b = [], []
    for op, text in pieces:
        if op == "=":
            a.append(_h(text))
            b.append(_h(text))
        elif op == "-":
            a.append(f"<del>{_h(text)}</del>")
        else:
            b.append(f"<ins>{_h(text)}</ins>")
    return "".join(a), "".join(b)


def _excerpt(result: DiffResult, refs: list[SourceRef], side: str, max_lines: int = 30) -> str:
    """The source lines of a thing, numbered, with the lines of its changes highlighted."""
    refs = [r for r in refs if r is not None]
    if not refs:
        return ""
    main = refs[0]
    text = result.sources.get(main.file)
    if text is None:
        return f'<div class="absent">{_h(main.file)}:{main.line}</div>'
    lines = text.splitlines()
    start = min(r.line for r in refs if r.file == main.file)
    end = max(r.end_line or r.line for r in refs if r.file == main.file)
    end = min(end, start + max_lines - 1, len(lines))
    marked = {ln for r in refs[1:] if r.file == main.file for ln in range(r.line, (r.end_line or r.line) + 1)}
    if not marked:
        marked = set(range(start, end + 1))
    out = []
    for ln in range(start, end + 1):
        cls = f"hl-{side}" if ln in marked else "plain"
        out.append(f'<span class="{cls}"><span class="ln">{ln}</span>{_h(lines[ln - 1])}</span>')
    return f'<pre class="src">{"".join(out)}</pre>'


def diff_html(result: DiffResult, lang: str = "kk") -> str:
    o, n = result.old, result.new
    counts = result.counts()
    kinds = _all_kinds(result)
    groups = result.groups()
    parts = [f"""<!DOCTYPE html>
<html lang="{_h(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_h(word('diff_title', lang))}: {_h(o.key)} → {_h(n.key)}</title>
<style>{_CSS}</style></head><body>
<header class="page"><h1>{_h(word('diff_title', lang))}</h1>
<div class="sub">{_h(o.key)} → {_h(n.key)}</div></header>
<main>
<div class="versions">{_vcard(o, 'old', lang)}{_vcard(n, 'new', lang)}</div>
<div class="summary"><span class="chip">{sum(counts.values())} {_h(word('changes', lang))}</span>
<span class="chip added">{counts['added']} {_h(word('added', lang))}</span>
<span class="chip removed">{counts['removed']} {_h(word('removed', lang))}</span>
<span class="chip changed">{counts['changed']} {_h(word('changed', lang))}</span></div>
"""]
    if not result.changes:
        parts.append(f"<p>{_h(word('no_changes', lang))}</p>")
    else:
        parts.append(f'<nav class="toc"><strong>{_h(word("contents", lang))}</strong><ol>')
        for i, ((thing, name), changes) in enumerate(groups):
            label = label_of(changes[0].labels, lang, "") if thing != "metadata" else ""
            title = thing_word(thing, lang) if thing == "metadata" else f"{thing_word(thing, lang)} {name}"
            parts.append(f'<li><a href="#c{i}">{_h(title)}</a>' + (f" — {_h(label)}" if label and label != name else "")
                         + f' <span class="badge {_group_op(changes)}">{_h(word(_group_op(changes), lang))}</span></li>')
        parts.append("</ol></nav>")
    for i, ((thing, name), changes) in enumerate(groups):
        parts.append(_html_group(result, i, thing, name, changes, kinds, lang))
    parts.append(f"""<footer>bagalau diff · {_h(o.key)} ({_h(o.content_hash[:19])}…) → {_h(n.key)} ({_h(n.content_hash[:19])}…)</footer>
</main></body></html>
""")
    return "".join(parts)


def _vcard(v, side: str, lang: str) -> str:
    period = "—"
    if v.effective_from:
        period = word("from", lang).format(d=v.effective_from) + (
            " " + word("to", lang).format(d=v.effective_to) if v.effective_to else f" ({word('open', lang)})")
    rows = [(word("status", lang), v.status), (word("effective", lang), period), (word("basis", lang), v.basis),
            (word("subjects_kinds", lang), ", ".join(v.subjects)), (word("file", lang), v.path)]
    dl = "".join(f"<dt>{_h(a)}</dt><dd>{_h(b)}</dd>" for a, b in rows)
    return (f'<div class="vcard {side}"><h2>{_h(word(side, lang))}: <code>{_h(v.key)}</code></h2>'
            f'<div class="label">{_h(label_of(v.title, lang, v.key))}</div><dl>{dl}</dl></div>')


def _html_group(result: DiffResult, i: int, thing: str, name: str, changes: list[Change], kinds: list[str], lang: str) -> str:
    op = _group_op(changes)
    label = label_of(changes[0].labels, lang, "") if thing != "metadata" else ""
    k = _kinds_text(changes[0], kinds) if thing != "metadata" else ""
    head = (f'<h3><span class="badge {op}">{_h(word(op, lang))}</span><span class="thing">{_h(thing_word(thing, lang))}</span>'
            + (f"<code>{_h(name)}</code>" if thing != "metadata" else "")
            + (f'<span class="label">{_h(label)}</span>' if label and label != name else "")
            + (f'<span class="kinds">{_h(word("for_kinds", lang))}: {_h(k)}</span>' if k else "") + "</h3>")
    rows = []
    for ch in changes:
        what = field_word(ch.field, lang) if ch.field else word(ch.op, lang)
        if ch.part:
            what += f" <span class='mono'>[{_h(ch.part)}]</span>" if ch.field != "constant" else \
                f"<span class='where'>{_h(ch.part)}</span>"
        else:
            what = _h(what)
        if ch.field and ch.op != "changed":
            what += f" ({_h(word(ch.op, lang))})"
        kk = _kinds_text(ch, kinds)
        if kk and thing != "metadata" and kk != k:
            what += f"<span class='kinds'><br>{_h(word('for_kinds', lang))}: {_h(kk)}</span>"
        code = thing != "metadata" and ch.field not in ("label", "band label")
        cls = " code" if code else ""
        a, b = _html_inline(ch.old, ch.new)
        old_cell = (f'<td class="old{cls}">{a}<span class="where">{_h(_where(ch.old_source))}</span></td>' if ch.old is not None
                    else f'<td class="empty">{_h(word("not_in_version", lang)) if not ch.field else "—"}</td>')
        new_cell = (f'<td class="new{cls}">{b}<span class="where">{_h(_where(ch.new_source))}</span></td>' if ch.new is not None
                    else f'<td class="empty">{_h(word("not_in_version", lang)) if not ch.field else "—"}</td>')
        rows.append(f"<tr><th scope='row'>{what}</th>{old_cell}{new_cell}</tr>")
        if ch.note:
            rows.append(f"<tr><td></td><td colspan='2' class='note'>{_h(ch.note)}</td></tr>")
    table = (f'<table class="changes"><colgroup><col class="what"><col class="val"><col class="val"></colgroup>'
             f'<thead><tr><th>{_h(word("what", lang))}</th><th>{_h(word("old", lang))}: {_h(result.old.key)}</th>'
             f'<th>{_h(word("new", lang))}: {_h(result.new.key)}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    sources = ""
    if thing != "metadata":
        whole_old = [c.old_source for c in changes if not c.field or c.field in ("formula", "label")]
        whole_new = [c.new_source for c in changes if not c.field or c.field in ("formula", "label")]
        first_old = next((s for s in whole_old + [c.old_source for c in changes] if s is not None), None)
        first_new = next((s for s in whole_new + [c.new_source for c in changes] if s is not None), None)
        old_refs = [first_old] + [c.old_source for c in changes if c.old_source and c.field not in ("formula", "label", "")]
        new_refs = [first_new] + [c.new_source for c in changes if c.new_source and c.field not in ("formula", "label", "")]
        old_x = _excerpt(result, old_refs, "old") or f'<div class="absent">{_h(word("not_in_version", lang))}</div>'
        new_x = _excerpt(result, new_refs, "new") or f'<div class="absent">{_h(word("not_in_version", lang))}</div>'
        sources = (f'<div class="sources"><div><h4>{_h(word("source", lang))} · {_h(_where(first_old))}</h4>{old_x}</div>'
                   f'<div><h4>{_h(word("source", lang))} · {_h(_where(first_new))}</h4>{new_x}</div></div>')
    return f'<section class="item" id="c{i}">{head}{table}{sources}</section>\n'


def render_diff(result: DiffResult, fmt: str = "text", lang: str = "kk", color: bool = False) -> str:
    if fmt == "text":
        return diff_text(result, lang, color)
    if fmt == "json":
        return diff_json(result)
    if fmt == "markdown":
        return diff_markdown(result, lang)
    if fmt == "html":
        return diff_html(result, lang)
    raise ValueError(f"unknown diff format {fmt!r}; expected one of {', '.join(DIFF_FORMATS)}")


# ---------------------------------------------------------------- impact: text


def _grade_text(report: ImpactReport, value: str, grade: str | None, lang: str) -> str:
    if grade is None:
        return "—"
    scale = report.scales.get(value)
    return scale.label(grade, lang) if scale else grade


def _value_label(report: ImpactReport, value: str, lang: str) -> str:
    return label_of(report.value_labels.get(value, {}), lang, value)


def _table(rows: list[list[str]], align: str = "") -> list[str]:
    """Plain columns; ``align``: one letter per column, r = right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [(cell.rjust(w) if (align[i:i + 1] == "r") else cell.ljust(w)) for i, (cell, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def impact_text(report: ImpactReport, lang: str = "kk", color: bool = False) -> str:
    c = _Ansi(color)
    counts = report.counts()
    out = [c(f"Impact {report.old['key']} → {report.new['key']}", "bold"),
           f"  {counts['subjects']} subjects: {counts['scored_both']} scored under both versions, "
           f"{counts['failed_old']} failed under {report.old['key']}, {counts['failed_new']} failed under {report.new['key']}"]
    for n in report.values:
        s = report.summaries[n]
        graded = f"; grade changed for {s.grade_changed} ({s.grade_up} up, {s.grade_down} down)" if n in report.graded else ""
        out.append(f"  {c(n, 'bold')} ({_value_label(report, n, lang)}): {s.up} up, {s.down} down, {s.same} unchanged; "
                   f"difference min {signed(s.min_delta)}, max {signed(s.max_delta)}, mean {signed(s.mean_delta)}{graded}")
    for n in report.graded:
        m = report.transitions.get(n)
        if m is None or not m.total:
            continue
        out += ["", c(f"Grade transitions: {n}", "bold") + c(f"  (rows: {report.old['key']}, columns: {report.new['key']})", "dim")]
        head = [f"{report.old['version']} \\ {report.new['version']}"] + [_grade_text(report, n, g, lang) for g in m.new_grades]
        rows = [head]
        for i, g in enumerate(m.old_grades):
            cells = []
            for j, h in enumerate(m.new_grades):
                cells.append(str(m.counts[i][j]) if m.counts[i][j] else ".")
            rows.append([_grade_text(report, n, g, lang)] + cells)
        out += _table(rows, "l" + "r" * len(m.new_grades))
        changed = [r for r in m.rows() if r["changed"]]
        if changed:
            out.append("  moved: " + ", ".join(f"{_grade_text(report, n, r['old'], lang)} → {_grade_text(report, n, r['new'], lang)}: "
                                             f"{r['count']}" for r in changed))
    rb = report.rank_by
    out += ["", c("Subjects", "bold")]
    head = ["id", "kind", "name"]
    for n in report.values:
        head += [f"{n} old", "new", "diff"] + (["grade old → new"] if n in report.graded else [])
    head += ["rank old → new"]
    rows = [head]
    for s in report.subjects:
        row = [s.id, s.kind, (s.name[:38] + "…") if len(s.name) > 39 else s.name]
        for n in report.values:
            row += [short(s.old.values.get(n)) if s.old.ok else "failed", short(s.new.values.get(n)) if s.new.ok else "failed",
                    signed(s.delta(n))]
            if n in report.graded:
                g, h = s.old.grades.get(n), s.new.grades.get(n)
                row.append(f"{_grade_text(report, n, g, lang)} → {_grade_text(report, n, h, lang)}" if g != h else
                           _grade_text(report, n, g, lang))
        row.append(_rank_text(s))
        rows.append(row)
    align = "lll" + "".join("rrr" + ("l" if n in report.graded else "") for n in report.values) + "l"
    lines = _table(rows, align)
    out.append(c(lines[0], "dim"))
    for s, line in zip(report.subjects, lines[1:]):
        if s.failed:
            line = c(line, "red")
        elif any(s.old.grades.get(n) != s.new.grades.get(n) for n in report.graded):
            line = c(line, "yellow")  # the grade changed
        out.append(line)
    if report.movers:
        out += ["", c(f"Largest movers by {rb}", "bold")]
        rows = [["id", "name", "old", "new", "diff", "grade", "rank"]]
        for s in report.movers:
            g, h = s.old.grades.get(rb), s.new.grades.get(rb)
            rows.append([s.id, s.name, short(s.old.values.get(rb)), short(s.new.values.get(rb)), signed(s.delta(rb)),
                         f"{_grade_text(report, rb, g, lang)} → {_grade_text(report, rb, h, lang)}" if g != h else _grade_text(report, rb, g, lang),
                         _rank_text(s)])
        out += _table(rows, "llrrrll")
    if report.failures:
        out += ["", c("Failed", "bold", "red")]
        for s, key, err in report.failures:
            out.append(f"  line {s.line} {s.id} under {key}: {err}")
    if report.notes:
        out += [""] + [c(f"note: {n}", "dim") for n in report.notes]
    return "\n".join(out) + "\n"


def _rank_text(s: SubjectImpact) -> str:
    if s.rank_old is None and s.rank_new is None:
        return "—"
    a = "—" if s.rank_old is None else str(s.rank_old)
    b = "—" if s.rank_new is None else str(s.rank_new)
    ch = s.rank_change
    return f"{a} → {b}" + (f" ({'+' if ch > 0 else ''}{ch})" if ch else "")


# ---------------------------------------------------------------- impact: json, csv


def impact_json(report: ImpactReport) -> str:
    return decimals.dumps(report.to_json(), indent=2) + "\n"


def impact_csv(report: ImpactReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["line", "id", "kind", "name", "synthetic"]
    for n in report.values:
        head += [f"{n}_old", f"{n}_new", f"{n}_delta"] + ([f"{n}_grade_old", f"{n}_grade_new"] if n in report.graded else [])
    head += ["rank_old", "rank_new", "rank_change", "error_old", "error_new"]
    w.writerow(head)
    f = lambda d: "" if d is None else format_decimal(d)  # noqa: E731
    for s in report.subjects:
        row = [s.line, s.id, s.kind, s.name, "true" if s.synthetic else "false"]
        for n in report.values:
            row += [f(s.old.values.get(n)), f(s.new.values.get(n)), f(s.delta(n))]
            if n in report.graded:
                row += [s.old.grades.get(n, ""), s.new.grades.get(n, "")]
        row += ["" if s.rank_old is None else s.rank_old, "" if s.rank_new is None else s.rank_new,
                "" if s.rank_change is None else s.rank_change, s.old.error or "", s.new.error or ""]
        w.writerow(row)
    return buf.getvalue()


# ---------------------------------------------------------------- impact: html with an inline SVG chart

_IMPACT_CSS = _CSS + """
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .big { font-size: 24px; font-weight: 700; } .card .small { color: var(--muted); font-size: 13px; }
h2.sec { font-size: 18px; margin: 22px 0 8px; }
table.grid { border-collapse: collapse; background: #fff; border: 1px solid var(--line); margin-bottom: 8px; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 5px 10px; font-size: 14px; text-align: right; }
table.grid th { background: #f0f3f8; font-weight: 600; }
table.grid th.rowhead { text-align: left; }
table.grid td.diag { background: #f4f6fa; } table.grid td.up { background: var(--new); font-weight: 700; }
table.grid td.down { background: var(--old); font-weight: 700; } table.grid td.zero { color: #b8bfcc; }
table.list { border-collapse: collapse; background: #fff; border: 1px solid var(--line); width: 100%; }
table.list th, table.list td { border-top: 1px solid var(--line); padding: 4px 8px; font-size: 13.5px; text-align: left; }
table.list th { background: #f0f3f8; position: sticky; top: 0; }
table.list td.num { text-align: right; font-family: "DejaVu Sans Mono", monospace; font-size: 13px; white-space: nowrap; }
td.pos { color: #1b5e20; } td.neg { color: #b71c1c; } tr.moved td { background: #fffbe6; } tr.failed td { background: var(--old); }
.chartbox { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; overflow-x: auto; }
.caption { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
"""


def _q(d: Decimal) -> str:
    """A pixel coordinate, computed exactly and printed to one decimal."""
    return format_decimal(d.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


def impact_chart(report: ImpactReport, lang: str = "kk", limit: int = 80) -> str:
    """An SVG dumbbell chart: one row per subject, old score (hollow) to new (filled), grade thresholds dashed."""
    n = report.rank_by
    if not n:
        return ""
    rows = [s for s in report.subjects if s.old.values.get(n) is not None and s.new.values.get(n) is not None]
    if not rows:
        return ""
    total = len(rows)
    if total > limit:
        rows = sorted(rows, key=lambda s: (-abs(s.delta(n)), s.id))[:limit]
    rows.sort(key=lambda s: (-s.new.values[n], -s.old.values[n], s.id))
    values = [v for s in rows for v in (s.old.values[n], s.new.values[n])]
    lo, hi = min(values), max(values)
    # grade thresholds from the models' bands: the lower ends of bands inside the plotted range
    bounds = _grade_bounds(report, n)
    pad = max((hi - lo) / 10, Decimal(1))
    lo = (lo - pad).to_integral_value(rounding="ROUND_FLOOR")
    hi = (hi + pad).to_integral_value(rounding="ROUND_CEILING")
    thresholds = [(b, g) for b, g in bounds if lo < b < hi]
    left, right, top, row_h = Decimal(300), Decimal(70), Decimal(34), Decimal(18)
    width = Decimal(1100)
    plot_w = width - left - right
    height = top + row_h * len(rows) + Decimal(40)

    def x(v: Decimal) -> str:
        return _q(left + (v - lo) / (hi - lo) * plot_w)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_q(width)}" height="{_q(height)}" viewBox="0 0 {_q(width)} {_q(height)}" '
             f'role="img" aria-label="{_h(word("chart", lang))}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">']
    parts.append(f'<rect x="0" y="0" width="{_q(width)}" height="{_q(height)}" fill="#ffffff"/>')
    # axis ticks
    step = _nice_step(hi - lo)
    t = (lo / step).to_integral_value(rounding="ROUND_CEILING") * step
    while t <= hi:
        parts.append(f'<line x1="{x(t)}" y1="{_q(top - 6)}" x2="{x(t)}" y2="{_q(height - 30)}" stroke="#eef0f4"/>')
        parts.append(f'<text x="{x(t)}" y="{_q(height - 14)}" text-anchor="middle" fill="#5b6478">{_h(format_decimal(t.normalize()) if t != 0 else "0")}</text>')
        t += step
    for b, g in thresholds:
        parts.append(f'<line x1="{x(b)}" y1="{_q(top - 14)}" x2="{x(b)}" y2="{_q(height - 30)}" stroke="#7a5cc0" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{x(b)}" y="{_q(top - 18)}" text-anchor="start" fill="#7a5cc0" font-size="11">'
                     f'{_h(format_decimal(b))} {_h(_grade_text(report, n, g, lang))}</text>')
    for i, s in enumerate(rows):
        y = top + row_h * i + row_h / 2
        a, b = s.old.values[n], s.new.values[n]
        d = b - a
        moved = s.old.grades.get(n) != s.new.grades.get(n)
        colour = "#2e7d32" if d > 0 else "#c62828" if d < 0 else "#607080"
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{_q(y - row_h / 2)}" width="{_q(width)}" height="{_q(row_h)}" fill="#f8f9fc"/>')
        label = s.id + (f" {s.name}" if s.name else "")
        label = label if len(label) <= 34 else label[:33] + "…"
        weight = ' font-weight="bold"' if moved else ""
        fill = "#8a5a00" if moved else "#1d2433"
        parts.append(f'<text x="{_q(left - 10)}" y="{_q(y + 4)}" text-anchor="end" fill="{fill}"{weight}>{_h(label)}</text>')
        parts.append(f'<line x1="{x(a)}" y1="{_q(y)}" x2="{x(b)}" y2="{_q(y)}" stroke="{colour}" stroke-width="3"/>')
        parts.append(f'<circle cx="{x(a)}" cy="{_q(y)}" r="4.5" fill="#ffffff" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(b)}" cy="{_q(y)}" r="4.5" fill="{colour}"><title>{_h(s.id)}: {_h(format_decimal(a))} → '
                     f'{_h(format_decimal(b))} ({_h(signed(d, 6))})</title></circle>')
        parts.append(f'<text x="{_q(width - right + 8)}" y="{_q(y + 4)}" fill="{colour}">{_h(signed(d, 2))}</text>')
    parts.append("</svg>")
    note = ""
    if total > len(rows):
        note = f'<div class="caption">{_h(word("shown", lang).format(n=len(rows), total=total))}</div>'
    return "".join(parts) + note


def _grade_bounds(report: ImpactReport, n: str) -> list[tuple[Decimal, str]]:
    """(lower end, band) of every band of the grade scale with a finite lower end."""
    scale = report.scales.get(n)
    if scale is None:
        return []
    return [(scale.lower[b], b) for b in scale.bands if scale.lower.get(b) is not None]


def _nice_step(span: Decimal) -> Decimal:
    for step in (Decimal("0.1"), Decimal("0.2"), Decimal("0.5"), Decimal(1), Decimal(2), Decimal(5), Decimal(10),
                 Decimal(20), Decimal(25), Decimal(50), Decimal(100), Decimal(200), Decimal(500), Decimal(1000)):
        if span / step <= 12:
            return step
    return Decimal(10) ** (len(str(int(span))) - 1)


def impact_html(report: ImpactReport, lang: str = "kk") -> str:
    counts = report.counts()
    o, n = report.old, report.new
    rb = report.rank_by
    synthetic = report.subjects and all(s.synthetic for s in report.subjects)
    parts = [f"""<!DOCTYPE html>
<html lang="{_h(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_h(word('impact_title', lang))}: {_h(o['key'])} → {_h(n['key'])}</title>
<style>{_IMPACT_CSS}</style></head><body>
<header class="page"><h1>{_h(word('impact_title', lang))}</h1>
<div class="sub">{_h(o['key'])} → {_h(n['key'])} · {_h(label_of(n['title'], lang, n['key']))}{(' · ' + _h(word('synthetic', lang))) if synthetic else ''}</div></header>
<main>
<div class="cards">
<div class="card"><div class="big">{counts['subjects']}</div><div class="small">{_h(word('subjects', lang))}</div></div>
<div class="card"><div class="big">{counts['scored_both']}</div><div class="small">{_h(word('scored_both', lang))}</div></div>
<div class="card"><div class="big">{counts['failed_any']}</div><div class="small">{_h(word('failed', lang))}</div></div>
"""]
    for v in report.graded:
        s = report.summaries[v]
        parts.append(f'<div class="card"><div class="big">{s.grade_changed}</div><div class="small">{_h(word("grade_changed", lang))}: '
                     f'{_h(v)} (↑{s.grade_up} ↓{s.grade_down})</div></div>')
    if rb:
        s = report.summaries[rb]
        parts.append(f'<div class="card"><div class="big">{_h(signed(s.mean_delta))}</div><div class="small">{_h(word("mean", lang))}: {_h(rb)} '
                     f'(↑{s.up} ↓{s.down} ={s.same})</div></div>')
    parts.append("</div>")
    for v in report.graded:
        m = report.transitions.get(v)
        if m is None:
            continue
        order = {g: i for i, g in enumerate(report.scales[v].bands)} if v in report.scales else {}
        parts.append(f'<h2 class="sec">{_h(word("transitions", lang))}: {_h(v)} — {_h(_value_label(report, v, lang))}</h2>'
                     f'<div class="caption">{_h(word("rows_cols", lang))}</div><table class="grid"><tr><th class="rowhead">'
                     f'{_h(o["version"])} \\ {_h(n["version"])}</th>')
        parts += [f"<th>{_h(_grade_text(report, v, g, lang))}</th>" for g in m.new_grades]
        parts.append("</tr>")
        for i, g in enumerate(m.old_grades):
            parts.append(f'<tr><th class="rowhead">{_h(_grade_text(report, v, g, lang))}</th>')
            for j, h in enumerate(m.new_grades):
                cnt = m.counts[i][j]
                cls = "diag" if g == h else ("zero" if not cnt else
                                             "up" if order.get(h, 0) < order.get(g, 0) else "down")
                if not cnt and g != h:
                    cls = "zero"
                parts.append(f'<td class="{cls}">{cnt}</td>')
            parts.append("</tr>")
        parts.append("</table>")
    if rb:
        parts.append(f'<h2 class="sec">{_h(word("chart", lang))}: {_h(rb)} — {_h(_value_label(report, rb, lang))}</h2>'
                     f'<div class="caption">{_h(word("chart_note", lang))}</div><div class="chartbox">{impact_chart(report, lang)}</div>')
    if report.movers:
        parts.append(f'<h2 class="sec">{_h(word("movers", lang))}: {_h(rb)}</h2>')
        parts.append(_subject_table(report, report.movers, [rb], lang))
    parts.append(f'<h2 class="sec">{_h(word("all_subjects", lang))}</h2>')
    parts.append(_subject_table(report, report.subjects, report.values, lang))
    if report.failures:
        parts.append(f'<h2 class="sec">{_h(word("failures", lang))}</h2><table class="list"><tr><th>{_h(word("id", lang))}</th>'
                     f'<th>{_h(word("version", lang))}</th><th>{_h(word("error", lang))}</th></tr>')
        for s, key, err in report.failures:
            parts.append(f"<tr class='failed'><td>{_h(s.id)} <span class='where'>line {s.line}</span></td><td>{_h(key)}</td>"
                         f"<td class='mono'>{_h(err)}</td></tr>")
        parts.append("</table>")
    if report.notes:
        parts.append(f'<h2 class="sec">{_h(word("notes", lang))}</h2><ul>' + "".join(f"<li>{_h(x)}</li>" for x in report.notes) + "</ul>")
    parts.append(f"<footer>bagalau impact · {_h(o['key'])} ({_h(o['content_hash'][:19])}…) → {_h(n['key'])} "
                 f"({_h(n['content_hash'][:19])}…)</footer></main></body></html>\n")
    return "".join(parts)


def _subject_table(report: ImpactReport, subjects: list[SubjectImpact], values: list[str], lang: str) -> str:
    head = [word("id", lang), word("kind", lang)]
    for v in values:
        head += [f"{v}: {word('old', lang)}", word("new", lang), word("delta", lang)] + \
            ([word("grade", lang)] if v in report.graded else [])
    head.append(word("rank", lang))
    out = ['<table class="list"><tr>' + "".join(f"<th>{_h(x)}</th>" for x in head) + "</tr>"]
    for s in subjects:
        moved = any(s.old.grades.get(v) != s.new.grades.get(v) for v in report.graded)
        cls = "failed" if s.failed else "moved" if moved else ""
        cells = [f"<td>{_h(s.id)}<span class='where'>{_h(s.name)}</span></td>", f"<td>{_h(s.kind)}</td>"]
        for v in values:
            d = s.delta(v)
            cells.append(f"<td class='num'>{_h(short(s.old.values.get(v)) if s.old.ok else word('failed', lang))}</td>")
            cells.append(f"<td class='num'>{_h(short(s.new.values.get(v)) if s.new.ok else word('failed', lang))}</td>")
            sign = "pos" if d is not None and d > 0 else "neg" if d is not None and d < 0 else ""
            cells.append(f"<td class='num {sign}'>{_h(signed(d))}</td>")
            if v in report.graded:
                g, h = s.old.grades.get(v), s.new.grades.get(v)
                text = _grade_text(report, v, g, lang) if g == h else \
                    f"{_grade_text(report, v, g, lang)} → {_grade_text(report, v, h, lang)}"
                cells.append(f"<td>{'<strong>' if g != h else ''}{_h(text)}{'</strong>' if g != h else ''}</td>")
        cells.append(f"<td class='num'>{_h(_rank_text(s))}</td>")
        out.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_impact(report: ImpactReport, fmt: str = "text", lang: str = "kk", color: bool = False) -> str:
    if fmt == "text":
        return impact_text(report, lang, color)
    if fmt == "json":
        return impact_json(report)
    if fmt == "csv":
        return impact_csv(report)
    if fmt == "html":
        return impact_html(report, lang)
    raise ValueError(f"unknown impact format {fmt!r}; expected one of {', '.join(IMPACT_FORMATS)}")


__all__ = ["DIFF_FORMATS", "IMPACT_FORMATS", "render_diff", "render_impact", "token_diff", "impact_chart"]
