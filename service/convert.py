"""Conversions between the protobuf messages and the library's types. No scoring logic here.

Decimals cross as strings in both directions: a well-formed decimal string becomes a ``Decimal``;
a malformed one is passed on as it is, so that the library reports it together with every other
problem of the request, with the type it expected.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from dsl.decimals import format_decimal
from dsl.errors import FieldIssue
from dsl.evaluate import EvalRequest, EvalResult, ExplanationItem

from .protos import pb
from .views import EvaluateRequestView, InputEntryView, to_view

DEFAULT_LANGUAGE = "kk"

STATUSES = {"draft": pb.VERSION_STATUS_DRAFT, "proposed": pb.VERSION_STATUS_PROPOSED,
            "in_force": pb.VERSION_STATUS_IN_FORCE, "repealed": pb.VERSION_STATUS_REPEALED}
INPUT_TYPES = {"count": pb.INPUT_TYPE_COUNT, "decimal": pb.INPUT_TYPE_DECIMAL, "percent": pb.INPUT_TYPE_PERCENT,
               "share": pb.INPUT_TYPE_SHARE, "points": pb.INPUT_TYPE_POINTS, "number": pb.INPUT_TYPE_NUMBER,
               "bool": pb.INPUT_TYPE_BOOL, "text": pb.INPUT_TYPE_TEXT, "date": pb.INPUT_TYPE_DATE,
               "enum": pb.INPUT_TYPE_ENUM, "list": pb.INPUT_TYPE_LIST}
OUTPUT_KINDS = {"indicator": pb.OUTPUT_KIND_INDICATOR, "criterion": pb.OUTPUT_KIND_CRITERION,
                "direction": pb.OUTPUT_KIND_DIRECTION, "score": pb.OUTPUT_KIND_SCORE, "bonus": pb.OUTPUT_KIND_BONUS,
                "penalty": pb.OUTPUT_KIND_PENALTY, "coefficient": pb.OUTPUT_KIND_COEFFICIENT, "value": pb.OUTPUT_KIND_VALUE}
SEVERITIES = {"error": pb.SEVERITY_ERROR, "warning": pb.SEVERITY_WARNING}


# ------------------------------------------------------------------------------ values


def _decimal(text: str) -> Decimal | str:
    try:
        d = Decimal(text.strip())
    except decimal.InvalidOperation:
        return text
    return d if d.is_finite() else text


# Decimal strings already read, and what they read as. Decimals are immutable, so one object can
# serve every request; inputs repeat a lot (counts, points, shares), and a look-up is several
# times cheaper than parsing. Bounded: emptied when full (at most a few MB).
_DECIMALS: dict[str, Decimal | str] = {}
_DECIMALS_MAX = 50_000


def _decimal_cached(text: str) -> Decimal | str:
    d = _DECIMALS.get(text)
    if d is None:
        d = _decimal(text)
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        _DECIMALS[text] = d
    return d


class _NoValue(Exception):
    """A Value (possibly nested) with no kind set: redone by ``value_to_python`` to name its path."""


def _plain(value: pb.Value) -> Any:
    """``value_to_python`` without paths, for the common case of a well-formed value; raises _NoValue."""
    text = value.decimal
    if text:
        d = _DECIMALS.get(text)
        return d if d is not None else _decimal_cached(text)
    kind = value.WhichOneof("kind")
    if kind == "list":
        return [_plain(item) for item in value.list.items]
    if kind == "record":
        fields = value.record.fields
        return {k: _plain(fields[k]) for k in fields}
    if kind == "flag":
        return value.flag
    if kind == "text":
        return value.text
    if kind == "decimal":  # set, but empty
        return _decimal(text)
    raise _NoValue


def value_to_python(value: pb.Value, path: str, issues: list[FieldIssue]) -> Any:
    """A Value as the library takes it: Decimal, bool, str, list, dict. Problems go to ``issues``."""
    kind = value.WhichOneof("kind")
    if kind == "decimal":
        return _decimal(value.decimal)
    if kind == "flag":
        return value.flag
    if kind == "text":
        return value.text
    if kind == "list":
        return [value_to_python(item, f"{path}[{i}]", issues) for i, item in enumerate(value.list.items)]
    if kind == "record":
        return {k: value_to_python(v, f"{path}.{k}", issues) for k, v in value.record.fields.items()}
    issues.append(FieldIssue(path, "no value set; set one of decimal, flag, text, list or record"))
    return None


def python_to_value(obj: Any) -> pb.Value:
    """A library value (a default, a recorded input) as a Value. Floats are refused: never scores."""
    if isinstance(obj, bool):
        return pb.Value(flag=obj)
    if isinstance(obj, (Decimal, int)):
        return pb.Value(decimal=format_decimal(Decimal(obj)))
    if isinstance(obj, (str, date)):
        return pb.Value(text=obj.isoformat() if isinstance(obj, date) else obj)
    if isinstance(obj, (list, tuple)):
        return pb.Value(list=pb.ValueList(items=[python_to_value(x) for x in obj]))
    if isinstance(obj, dict):
        return pb.Value(record=pb.Record(fields={str(k): python_to_value(v) for k, v in obj.items()}))
    raise TypeError(f"cannot send a {type(obj).__name__} as a Value")


def date_from_pb(d, path: str, issues: list[FieldIssue]) -> date | None:
    try:
        return date(d.year, d.month, d.day)
    except ValueError:
        issues.append(FieldIssue(path, f"{d.year:04d}-{d.month:02d}-{d.day:02d} is not a date; give year, month and day"))
        return None


def date_to_pb(d: date | None, target) -> None:
    if d is not None:
        target.year, target.month, target.day = d.year, d.month, d.day


def decimal_text(d) -> str:
    return "" if d is None else format_decimal(Decimal(d))


def result_text(d: Decimal) -> str:
    """``format_decimal`` of a computed value, faster: ``str`` already gives plain notation unless
    it chose an exponent or printed a negative zero."""
    text = str(d)
    if "E" in text or (text[0] == "-" and not d):
        return format_decimal(d)
    return text


# ------------------------------------------------------------------------------ evaluation


class Selection(NamedTuple):
    """Which version a request asks for: by name, or the one in force on a date."""

    methodology: str
    version: str
    as_of: date | None


def evaluation_from_pb(req) -> tuple[Selection | None, EvalRequest, list[FieldIssue]]:
    """The version selection and library request, and the problems found in the message itself.

    ``req`` is an EvaluateRequest or its view (``views.EvaluateRequestView``: what the servicer
    receives). The selection is None when the request does not say which version to use. (This
    runs for every item of every batch: it is written for speed. Each field of a message read
    costs a call into the protobuf runtime, so each is read once.)
    """
    if type(req) is not EvaluateRequestView:
        req = to_view(req)
    issues: list[FieldIssue] = []
    methodology, version, subject = req.methodology, req.version, req.subject
    kind = subject.kind
    if methodology and version and kind and not req.HasField("as_of"):  # the usual request
        selection = Selection(methodology, version, None)
    else:
        selection = _selection(req, methodology, version, kind, issues)
    entries = list(req.inputs)  # each a map entry as received: name and encoded Value
    pairs = list(map(_ENTRIES.get, entries))  # (name, value) of the entries seen before, else None
    if None in pairs:
        for n, entry in enumerate(entries):
            if pairs[n] is None:
                pairs[n] = _input_entry(entry, issues)
        if None in pairs:  # entries with a problem (in ``issues``)
            pairs = [p for p in pairs if p is not None]
    only = req.only
    return selection, EvalRequest(subject.id, kind, dict(pairs),  # a name sent twice: the last wins, as in a map
                                  list(only) if only else None, req.explain, req.language or DEFAULT_LANGUAGE), issues


def _selection(req, methodology: str, version: str, kind: str, issues: list[FieldIssue]) -> Selection | None:
    """The selection of a request that gives as_of, or misses something (then in ``issues``)."""
    has_as_of = req.HasField("as_of")
    as_of = date_from_pb(req.as_of, "as_of", issues) if has_as_of else None
    if not methodology:
        issues.append(FieldIssue("methodology", "required, e.g. org-development"))
    if version and has_as_of:
        issues.append(FieldIssue("version", "give either version or as_of, not both"))
    elif not version and not has_as_of:
        issues.append(FieldIssue("version", "required: give version, or as_of to use the version in force on that date"))
    if not kind:
        issues.append(FieldIssue("subject.kind", "required: the kind of subject scored (central, local or servant)"))
    if methodology and kind and (version or as_of is not None) and not (version and has_as_of):
        return Selection(methodology, version, as_of)
    return None


# Map entries already read, and what they read as: (name, value). Entries recur a lot (points,
# counts, shares, the same list of systems), and a look-up is several times cheaper than decoding.
# The values are shared between requests: the library only reads its inputs (it never changes a
# list or record it is given), and decimals, texts and flags cannot change. Entries longer than
# _ENTRY_MAX_BYTES are decoded every time; the cache is emptied when full (see _DECIMALS).
_ENTRIES: dict[bytes, tuple[str, Any]] = {}
_ENTRY_MAX_BYTES = 1024


def _remember(entry: bytes, pair: tuple[str, Any]) -> tuple[str, Any]:
    if len(entry) <= _ENTRY_MAX_BYTES:
        if len(_ENTRIES) >= _DECIMALS_MAX:
            _ENTRIES.clear()
        _ENTRIES[entry] = pair
    return pair


def _input_entry(entry: bytes, issues: list[FieldIssue]) -> tuple[str, Any] | None:
    """An entry of ``inputs`` as (name, value as the library takes it); None when it has a problem
    (then in ``issues``)."""
    try:
        parsed = InputEntryView.FromString(entry)
    except DecodeError:
        issues.append(FieldIssue("inputs", "an entry is not a valid map entry (name and Value)"))
        return None
    name, data = parsed.key, parsed.value
    size = len(data) - 2
    if 0 <= size < 128 and data[0] == 0x0A and data[1] == size:  # exactly one short decimal field
        try:
            text = data[2:].decode("utf-8")
        except UnicodeDecodeError:
            pass  # decoded below, which reports it
        else:
            return _remember(entry, (name, _decimal(text)))
    try:
        message = pb.Value.FromString(data)
    except DecodeError:
        issues.append(FieldIssue(name, "not a valid Value (a decimal, flag, text, list or record)"))
        return None
    try:
        return _remember(entry, (name, _plain(message)))
    except _NoValue:
        value = value_to_python(message, name, issues)
        return None if value is None else (name, value)


def explanation_to_pb(item: ExplanationItem, rules_root: str = "") -> pb.Explanation:
    return pb.Explanation(name=item.name, kind=item.kind, label=item.label, formula=item.formula,
                          substituted=item.substituted, value=decimal_text(item.value), detail=item.detail,
                          file=_relative(item.file, rules_root), line=item.line, supplied=item.supplied,
                          grade=getattr(item, "grade", "") or "")


def result_to_pb(result: EvalResult, request_id: str, evaluation_id: str = "", rules_root: str = "",
                 out: pb.EvaluateResponse | None = None) -> pb.EvaluateResponse:
    """The response for a result; filled into ``out`` when given (a batch's new item: no copy)."""
    if out is None:
        out = pb.EvaluateResponse()
    out.request_id = request_id
    out.evaluation_id = evaluation_id
    out.methodology = result.methodology
    out.version = result.version
    out.content_hash = result.content_hash
    values = out.values
    for name, value in result.values.items():
        values[name] = result_text(value)
    if result.grades:
        grades = out.grades
        for name, grade in result.grades.items():
            grades[name] = grade
    if result.supplied:
        out.supplied.extend(result.supplied)
    if result.explanation:
        out.explanation.extend([explanation_to_pb(e, rules_root) for e in result.explanation])
    subject = out.subject
    subject.id = result.subject_id
    subject.kind = result.subject_kind
    return out


# ------------------------------------------------------------------------------ methodologies


def input_to_pb(spec) -> pb.InputField:
    out = pb.InputField(name=spec.name, type=INPUT_TYPES.get(spec.type, pb.INPUT_TYPE_UNSPECIFIED), type_name=spec.type,
                        min=decimal_text(spec.min), max=decimal_text(spec.max), labels=dict(spec.labels),
                        optional=bool(spec.optional), choices=list(spec.choices or ()),
                        fields=[input_to_pb(f) for f in spec.fields or ()], record=spec.record or "",
                        min_exclusive=spec.min_open, max_exclusive=spec.max_open, min_input=spec.min_ref or "",
                        max_input=spec.max_ref or "")
    if spec.default is not None:
        out.default_value.CopyFrom(python_to_value(spec.default))
    return out


def output_to_pb(spec) -> pb.OutputField:
    return pb.OutputField(name=spec.name, kind=OUTPUT_KINDS.get(spec.kind, pb.OUTPUT_KIND_UNSPECIFIED), kind_name=spec.kind,
                          labels=dict(spec.labels), min=decimal_text(spec.min), max=decimal_text(spec.max),
                          grades=list(spec.grades), unit=getattr(spec, "unit", "") or "")


def version_to_pb(cv, schema_kinds: list[str] | None = None, rules_root: str = "") -> pb.MethodologyVersion:
    out = pb.MethodologyVersion(version=cv.version, status=STATUSES.get(cv.status, pb.VERSION_STATUS_UNSPECIFIED),
                                basis=cv.basis or "", title=dict(cv.title or {}), subject_kinds=list(cv.subjects),
                                content_hash=cv.content_hash, extends=cv.extends or "",
                                source_path=_relative(cv.source_path, rules_root))
    if cv.effective_from:
        date_to_pb(cv.effective_from, out.effective_from)
    if cv.effective_to:
        date_to_pb(cv.effective_to, out.effective_to)
    for kind in schema_kinds or ():
        out.schemas.append(pb.SubjectSchema(subject_kind=kind, inputs=[input_to_pb(s) for s in cv.input_schema(kind)],
                                            outputs=[output_to_pb(s) for s in cv.outputs(kind)]))
    return out


@functools.lru_cache(maxsize=1024)
def _relative(path: str, root: str) -> str:
    """A rule file's path inside the rules folder: clients need not learn the server's layout."""
    if not root or not path:
        return path
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def methodology_to_pb(name: str, versions: list, schema_for=None, rules_root: str = "") -> pb.Methodology:
    """``schema_for(cv)`` gives the subject kinds whose schema to include for a version (None: no schema)."""
    latest = versions[-1] if versions else None
    return pb.Methodology(name=name, title=dict(latest.title or {}) if latest else {},
                          versions=[version_to_pb(cv, schema_for(cv) if schema_for else None, rules_root) for cv in versions])


# ------------------------------------------------------------------------------ diagnostics


def diagnostic_to_pb(d) -> pb.Diagnostic:
    return pb.Diagnostic(code=d.code, slug=getattr(d, "slug", ""), severity=SEVERITIES.get(d.severity, pb.SEVERITY_UNSPECIFIED),
                         message=d.message, file=d.file, line=d.line or 0, column=d.column or 0,
                         end_line=d.end_line or 0, end_column=d.end_column or 0,
                         source_line=(d.source_line or "").rstrip("\n"), formatted=d.format())


# ------------------------------------------------------------------------------ versions compared

DIFF_FORMATS = {pb.DIFF_FORMAT_TEXT: "text", pb.DIFF_FORMAT_JSON: "json", pb.DIFF_FORMAT_MARKDOWN: "markdown",
                pb.DIFF_FORMAT_HTML: "html"}
IMPACT_FORMATS = {pb.IMPACT_FORMAT_TEXT: "text", pb.IMPACT_FORMAT_JSON: "json", pb.IMPACT_FORMAT_CSV: "csv",
                  pb.IMPACT_FORMAT_HTML: "html"}
MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "json": "application/json", "markdown": "text/markdown; charset=utf-8",
               "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
CHANGE_OPS = {"added": pb.CHANGE_OP_ADDED, "removed": pb.CHANGE_OP_REMOVED, "changed": pb.CHANGE_OP_CHANGED}


def compared_version_to_pb(cv, rules_root: str = "") -> pb.ComparedVersion:
    return pb.ComparedVersion(methodology=cv.methodology, version=version_to_pb(cv, None, rules_root))


def document_to_pb(fmt: str, content: str) -> pb.RenderedDocument:
    return pb.RenderedDocument(media_type=MEDIA_TYPES[fmt], content=content)


def _source_to_pb(ref, target, rules_root: str) -> None:
    if ref is not None:
        target.file = _relative(ref.file, rules_root)
        target.line = ref.line
        target.end_line = ref.end_line or ref.line


def change_to_pb(change, rules_root: str = "") -> pb.VersionChange:
    out = pb.VersionChange(name=change.name, thing=change.thing, op=CHANGE_OPS.get(change.op, pb.CHANGE_OP_UNSPECIFIED),
                           field=change.field, part=change.part, subject_kinds=list(change.kinds), note=change.note,
                           labels=dict(change.labels), description=change.describe())
    if change.old is not None:
        out.old = change.old
    if change.new is not None:
        out.new = change.new
    _source_to_pb(change.old_source, out.old_source, rules_root)
    _source_to_pb(change.new_source, out.new_source, rules_root)
    return out


def diff_to_pb(result, old, new, rules_root: str = "") -> pb.DiffVersionsResponse:
    """``result``: a ``dsl.diff.DiffResult`` of the CompiledVersions ``old`` and ``new``."""
    counts = result.counts()
    return pb.DiffVersionsResponse(old=compared_version_to_pb(old, rules_root), new=compared_version_to_pb(new, rules_root),
                                   changes=[change_to_pb(c, rules_root) for c in result.changes],
                                   counts=pb.ChangeCounts(**{op: counts.get(op, 0) for op in ("added", "removed", "changed")}))


def relative_diff(result, rules_root: str):
    """The DiffResult with rule file paths relative to the rules folder, for a rendered document:
    clients need not learn the server's layout."""
    if not rules_root:
        return result
    rel = functools.partial(_relative, root=rules_root)

    def ref(r):
        return None if r is None else replace(r, file=rel(r.file))

    changes = [replace(c, old_source=ref(c.old_source), new_source=ref(c.new_source)) for c in result.changes]
    return replace(result, old=replace(result.old, path=rel(result.old.path)), new=replace(result.new, path=rel(result.new.path)),
                   changes=changes, sources={rel(f): text for f, text in result.sources.items()})


def inputs_from_pb(values, path: str, issues: list[FieldIssue]) -> dict[str, Any]:
    """A ``map<string, Value>`` as the library takes it; problems go to ``issues`` under ``path.NAME``."""
    out = {}
    for name in values:
        v = value_to_python(values[name], f"{path}{name}", issues)
        if v is not None:
            out[name] = v
    return out


def impact_subject_from_pb(subject: pb.ImpactSubject, path: str, issues: list[FieldIssue]) -> dict:
    """An ImpactSubject as ``dsl.impact`` reads a request (``{"subject": …, "inputs": …}``)."""
    raw: dict[str, Any] = {"subject": {"id": subject.subject.id, "kind": subject.subject.kind, "name": subject.name,
                                       "synthetic": subject.synthetic},
                           "inputs": inputs_from_pb(subject.inputs, f"{path}inputs.", issues)}
    if subject.inputs_by_version:
        raw["inputs_by_version"] = {key: inputs_from_pb(record.fields, f"{path}inputs_by_version.{key}.", issues)
                                    for key, record in subject.inputs_by_version.items()}
    return raw


def _text(d) -> str:
    return "" if d is None else format_decimal(d)


def _outcome_to_pb(outcome, target: pb.ImpactOutcome) -> None:
    target.values.update({n: format_decimal(v) for n, v in outcome.values.items() if v is not None})
    target.grades.update(outcome.grades)
    if outcome.error is not None:
        target.error = outcome.error
        target.error_type = outcome.error_type or ""
        target.issues.extend(pb.InputIssue(field=i.get("field", ""), description=i.get("message", ""))
                             for i in outcome.issues)


def _ranks(target, rank_old, rank_new, rank_change) -> None:
    if rank_old is not None:
        target.rank_old = rank_old
    if rank_new is not None:
        target.rank_new = rank_new
    if rank_change is not None:
        target.rank_change = rank_change


def impact_to_pb(report, old, new, rules_root: str = "") -> pb.AnalyzeImpactResponse:
    """``report``: a ``dsl.impact.ImpactReport`` of the CompiledVersions ``old`` and ``new``."""
    out = pb.AnalyzeImpactResponse(old=compared_version_to_pb(old, rules_root), new=compared_version_to_pb(new, rules_root),
                                   values=report.values, graded=report.graded, rank_by=report.rank_by or "",
                                   notes=report.notes)
    for s in report.subjects:
        item = out.subjects.add(index=s.line, id=s.id, kind=s.kind, name=s.name, synthetic=s.synthetic)
        _outcome_to_pb(s.old, item.old)
        _outcome_to_pb(s.new, item.new)
        item.delta.update({n: format_decimal(d) for n in report.values if (d := s.delta(n)) is not None})
        _ranks(item, s.rank_old, s.rank_new, s.rank_change)
    for name, matrix in report.transitions.items():
        scale = report.scales.get(name)
        t = out.transitions.add(value=name, old_grades=matrix.old_grades, new_grades=matrix.new_grades,
                                rows=[pb.TransitionRow(counts=row) for row in matrix.counts],
                                changed=matrix.changed(), total=matrix.total)
        if scale is not None:
            t.bands.extend(pb.GradeBand(name=b, labels=scale.labels.get(b, {}), lower=_text(scale.lower.get(b)))
                           for b in scale.bands)
    for name, summary in report.summaries.items():
        out.summaries.add(value=name, labels=report.value_labels.get(name, {}), compared=summary.compared, up=summary.up,
                          down=summary.down, same=summary.same, min_delta=_text(summary.min_delta),
                          max_delta=_text(summary.max_delta), total_delta=_text(summary.total_delta),
                          mean_delta=_text(summary.mean_delta), grade_changed=summary.grade_changed,
                          grade_up=summary.grade_up, grade_down=summary.grade_down)
    n = report.rank_by
    for s in report.movers:
        m = out.movers.add(index=s.line, id=s.id, name=s.name, kind=s.kind, value=n or "",
                           old=_text(s.old.values.get(n)), new=_text(s.new.values.get(n)), delta=_text(s.delta(n)),
                           old_grade=s.old.grades.get(n, ""), new_grade=s.new.grades.get(n, ""))
        _ranks(m, s.rank_old, s.rank_new, s.rank_change)
    for s, key, error in report.failures:
        out.failures.add(index=s.line, id=s.id, kind=s.kind, version=key, error=error or "")
    counts = report.counts()
    out.counts.CopyFrom(pb.ImpactCounts(
        subjects=counts["subjects"], scored_both=counts["scored_both"], failed_old=counts["failed_old"],
        failed_new=counts["failed_new"], failed_any=counts["failed_any"],
        grade_changed={k[len("grade_changed_"):]: v for k, v in counts.items() if k.startswith("grade_changed_")}))
    return out
