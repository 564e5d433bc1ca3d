"""Semantic diff: one test per kind of change, on small rule snippets, plus the real org-development change."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruletext import HEADER, compile_snippet
from dsl.diff import diff_models, diff_versions
from dsl.registry import compile_paths

ROOT = Path(__file__).resolve().parents[2]


def model(body: str, header: str = HEADER, path: str = "old.bgl"):
    m, diags = compile_snippet(body, header, path)
    assert m is not None, "\n".join(d.format() for d in diags if d.severity == "error")
    return m


def diff(old_body: str, new_body: str, old_header: str = HEADER, new_header: str | None = None):
    return diff_models(model(old_body, old_header, "old.bgl"), model(new_body, new_header or old_header, "new.bgl"))


def only(result, **kw):
    found = result.find(**kw)
    assert len(found) == 1, [c.to_json() for c in result.changes]
    return found[0]


BASE = """
input a : points 0..10 en "A points"
input b : points 0..10
indicator x max 10 = a
indicator y max 10 = b
score total max 100 = weighted(0.5 * x, 0.5 * y) * 10
"""


def test_identical_versions_have_no_changes():
    assert diff(BASE, BASE).changes == []


def test_formatting_and_comments_are_not_changes():
    reformatted = BASE.replace("weighted(0.5 * x, 0.5 * y) * 10", "(weighted( 0.5*x ,0.5*y ))*10   # same meaning")
    assert diff(BASE, reformatted).changes == []


def test_input_added():
    c = only(diff(BASE, BASE + "input c : count\nindicator z = c\n"), name="c", thing="input")
    assert (c.op, c.field, c.old, c.new) == ("added", "", None, "c : count")
    assert c.new_source.file == "new.bgl" and c.new_source.line > 0 and c.old_source is None
    assert c.kinds == ["central", "local"]


def test_input_removed():
    old = BASE + "input c : count\nindicator z = c\n"
    c = only(diff(old, BASE), name="c", thing="input")
    assert (c.op, c.old, c.new) == ("removed", "c : count", None)
    assert c.old_source.file == "old.bgl" and c.new_source is None


def test_input_bounds_changed():
    c = only(diff(BASE, BASE.replace("input b : points 0..10", "input b : points 0..20").replace("indicator y max 10", "indicator y max 20")
                  .replace("0.5 * y) * 10", "0.5 * y / 2) * 10")), name="b", field="bounds")
    assert (c.thing, c.op, c.old, c.new) == ("input", "changed", "0..10", "0..20")
    assert str(c.old_source) == "old.bgl:9" and str(c.new_source) == "new.bgl:9"


def test_input_type_and_default_changed():
    old = "input n : count\nindicator x = n\n"
    new = "input n : decimal >= 0 default 0\nindicator x = n\n"
    r = diff(old, new)
    assert only(r, name="n", field="type").to_json()["old"] == "count"
    assert only(r, name="n", field="type").new == "decimal"
    assert only(r, name="n", field="bounds").new == ">= 0"
    d = only(r, name="n", field="default")
    assert (d.op, d.new) == ("added", "0")


def test_formula_changed_with_constant_0_08_to_0_09():
    tmpl = """
input left : count
input avg : decimal > 0
indicator net_turnover max 10 {
  let t = left / avg
  result = when {
    t <= 0.06 -> 10
    t >= LIMIT -> 0
    else -> 10 * (LIMIT - t) / 0.03
  }
}
"""
    r = diff(tmpl.replace("LIMIT", "0.08"), tmpl.replace("LIMIT", "0.09"))
    f = only(r, name="net_turnover", field="formula")
    assert f.thing == "indicator" and f.note == "only numbers changed"
    assert f.old == "let t = left / avg; when { t <= 0.06 -> 10; t >= 0.08 -> 0; else -> 10 * (0.08 - t) / 0.03 }"
    assert f.new == f.old.replace("0.08", "0.09")
    consts = r.find(name="net_turnover", field="constant")
    assert [(c.old, c.new) for c in consts] == [("0.08", "0.09"), ("0.08", "0.09")]
    assert [c.part for c in consts] == ["t >= 0.08", "10 * (0.08 - t) / 0.03"]
    # each constant points at its own line in both files
    assert [c.old_source.line for c in consts] == [14, 15]
    assert [c.new_source.line for c in consts] == [14, 15]


def test_structural_formula_change_has_no_constant_entries():
    r = diff("input a : points 0..10\nindicator x max 20 = a\n", "input a : points 0..10\nindicator x max 20 = a * 2\n")
    f = only(r, name="x", field="formula")
    assert (f.old, f.new, f.note) == ("a", "a * 2", "")
    assert r.find(field="constant") == []


def test_weight_changed():
    r = diff(BASE, BASE.replace("weighted(0.5 * x, 0.5 * y)", "weighted(0.6 * x, 0.4 * y)"))
    weights = r.find(name="total", field="weight")
    assert {(w.part, w.old, w.new) for w in weights} == {("x", "0.5", "0.6"), ("y", "0.5", "0.4")}
    assert all(w.thing == "score" for w in weights)
    assert r.find(field="constant") == []  # weights are not reported as constants


def test_weight_term_added():
    old = "input a : points 0..10\ninput b : points 0..10\nscore s max 10 = weighted(1 * a)\nindicator u max 10 = b\n"
    new = "input a : points 0..10\ninput b : points 0..10\nscore s max 10 = weighted(0.5 * a, 0.5 * b)\nindicator u max 10 = b\n"
    r = diff(old, new)
    assert only(r, name="s", field="weight").old == "1"
    t = only(r, name="s", field="weight term")
    assert (t.op, t.new) == ("added", "0.5 * b")


def test_max_changed():
    r = diff(BASE, BASE.replace("indicator x max 10 = a", "indicator x max 20 = a * 2").replace("0.5 * x", "0.5 * x / 2"))
    c = only(r, name="x", field="max")
    assert (c.thing, c.op, c.old, c.new) == ("indicator", "changed", "10", "20")


def test_min_and_rounding_added():
    r = diff(BASE, BASE.replace("score total max 100 = weighted(0.5 * x, 0.5 * y) * 10",
                                "score total min 0 max 100 = weighted(0.5 * x, 0.5 * y) * 10 round 1 half-up"))
    m = only(r, name="total", field="min")
    assert (m.op, m.old, m.new) == ("added", None, "0")
    c = only(r, name="total", field="rounding")
    assert (c.op, c.new) == ("added", "round 1 half-up")


def test_bonus_and_penalty_rules():
    old = """
input s : points 0..2
input v : count
bonus planning = s
penalty late = 1 * v
criterion c max 40 = 30 + planning - late
"""
    new = """
input s : points 0..2
input v : count
penalty late = 2 * v
criterion c max 40 = 30 - late
"""
    r = diff(old, new)
    b = only(r, name="planning", op="removed")
    assert b.thing == "bonus" and b.old == "bonus planning = s"
    p = only(r, name="late", field="constant")
    assert (p.thing, p.old, p.new) == ("penalty", "1", "2")
    assert only(r, name="late", field="formula").new == "2 * v"


def test_definition_kind_changed_and_moved():
    old = "input s : points 0..2\nbonus sp = s\ncriterion c max 40 = 30 + sp\n"
    new = "input s : points 0..2\nindicator sp max 2 = s\ncriterion c max 40 = 30 + sp\n"
    r = diff(old, new)
    k = only(r, name="sp", field="kind")
    assert (k.old, k.new, k.thing) == ("bonus", "indicator", "indicator")
    # a definition removed and another added with the same formula is flagged as moved or renamed
    r = diff(old, "input s : points 0..2\nindicator sp2 max 2 = s\ncriterion c max 40 = 30 + sp2\n")
    assert "moved or renamed" in only(r, name="sp", op="removed").note
    assert "moved or renamed" in only(r, name="sp2", op="added").note


TABLE = """
input share : percent
table pts(v: percent) en "points by share" {
  [90, 100] -> 10
  [80, 90)  -> 8
  [0, 80)   -> 0
}
indicator p max 10 = pts(share)
"""


def test_band_table_band_changed():
    r = diff(TABLE, TABLE.replace("[80, 90)  -> 8", "[80, 90)  -> 7"))
    c = only(r, name="pts", field="band")
    assert (c.thing, c.part, c.old, c.new) == ("table", "[80, 90)", "[80, 90) -> 8", "[80, 90) -> 7")
    assert c.old_source.line == c.new_source.line == 11
    assert only(r, name="pts", field="constant").new == "7"


def test_band_table_band_added():
    new = TABLE.replace("[80, 90)  -> 8\n  [0, 80)   -> 0", "[80, 90)  -> 8\n  [50, 80)  -> 4\n  [0, 50)   -> 0")
    r = diff(TABLE, new)
    assert {(c.op, c.part) for c in r.find(name="pts", field="band")} == {
        ("removed", "[0, 80)"), ("added", "[50, 80)"), ("added", "[0, 50)")}


GRADES = """
input a : points 0..100
score s max 100 = a
grade s {
  high    kk "жоғары" en "high"    [90, 100]
  average kk "орташа" en "average" [70, 90)
  low     kk "төмен"  en "low"     [-inf, 70)
}
"""


def test_grade_scale_band_changed():
    r = diff(GRADES, GRADES.replace("[90, 100]", "[85, 100]").replace("[70, 90)", "[70, 85)"))
    bands = r.find(name="s", thing="grade", field="band")
    assert [(c.part, c.old, c.new) for c in bands] == [("high", "[90, 100]", "[85, 100]"), ("average", "[70, 90)", "[70, 85)")]


def test_grade_scale_band_added_and_label_changed():
    new = GRADES.replace('low     kk "төмен"  en "low"     [-inf, 70)',
                         'low     kk "төмен"  en "low"     [50, 70)\n  ineffective kk "тиімсіз" en "ineffective" [-inf, 50)')
    new = new.replace('en "average"', 'en "medium"')
    r = diff(GRADES, new)
    assert only(r, name="s", field="band", part="low").new == "[50, 70)"
    assert only(r, name="s", field="band", part="ineffective").op == "added"
    lab = only(r, name="s", field="band label")
    assert (lab.part, lab.old, lab.new) == ("average.en", "average", "medium")


def test_label_changed():
    r = diff(BASE, BASE.replace('input a : points 0..10 en "A points"', 'input a : points 0..10 kk "А балы" en "Points of A"'))
    en = only(r, name="a", field="label", part="en")
    assert (en.op, en.old, en.new) == ("changed", "A points", "Points of A")
    kk = only(r, name="a", field="label", part="kk")
    assert (kk.op, kk.old, kk.new) == ("added", None, "А балы")


def test_definition_label_changed_in_russian():
    old = 'input a : points 0..10\nindicator x ru "Показатель" max 10 = a\n'
    r = diff(old, old.replace("Показатель", "Новый показатель"))
    c = only(r, name="x", field="label")
    assert (c.part, c.new, c.thing) == ("ru", "Новый показатель", "indicator")


def test_metadata_changed():
    new_header = (HEADER.replace('version "1"', 'version "2"').replace("2020-01-01", "2021-01-01")
                  .replace('title kk "Демо" en "Демо"', "").replace('en "Demo"', 'en "Demo, revised"')
                  .replace('basis "test order"', 'basis "order No. 2"').replace("in_force", "proposed"))
    r = diff(BASE, BASE, HEADER, new_header)
    got = {(c.name, c.part): (c.old, c.new) for c in r.changes}
    assert got == {("title", "en"): ("Demo", "Demo, revised"), ("basis", ""): ("test order", "order No. 2"),
                   ("status", ""): ("in_force", "proposed"), ("effective_from", ""): ("2020-01-01", "2021-01-01")}
    assert all(c.thing == "metadata" for c in r.changes)
    status = only(r, name="status")
    assert str(status.old_source) == "old.bgl:5" and str(status.new_source) == "new.bgl:5"


def test_subjects_changed():
    r = diff(BASE, BASE, HEADER, HEADER.replace("subjects central, local", "subjects central"))
    s = only(r, name="subjects")
    assert (s.old, s.new) == ("central, local", "central")
    # everything local had is gone for local only
    removed = r.find(op="removed")
    assert removed and all(c.kinds == ["local"] for c in removed)


def test_variant_only_change_names_only_that_kind():
    old = "input a : points 0..10\nindicator x max 10 = a\nfor local {\n  indicator x max 10 = a / 2\n}\n"
    new = "input a : points 0..10\nindicator x max 10 = a\nfor local {\n  indicator x max 10 = a / 4\n}\n"
    r = diff(old, new)
    f = only(r, name="x", field="formula")
    assert (f.old, f.new, f.kinds) == ("a / 2", "a / 4", ["local"])
    assert only(r, name="x", field="constant").kinds == ["local"]


def test_common_change_names_every_kind():
    r = diff("input a : points 0..10\nindicator x max 20 = a\n", "input a : points 0..10\nindicator x max 20 = a * 2\n")
    assert only(r, name="x", field="formula").kinds == ["central", "local"]


def test_param_value_and_constraint_changed():
    old = "param cap = 10\ninput a : points 0..cap\ninput b : count\ninput c : count\nconstraint bc = b <= c\nindicator x max 10 = a\nindicator y = b + c\n"
    new = old.replace("param cap = 10", "param cap = 12").replace("b <= c", "b <= c + 1").replace("max 10 = a", "max 12 = a")
    r = diff(old, new)
    p = only(r, name="cap", field="value")
    assert (p.thing, p.old, p.new) == ("param", "10", "12")
    c = only(r, name="bc", field="formula")
    assert (c.thing, c.old, c.new) == ("constraint", "b <= c", "b <= c + 1")


def test_record_field_added():
    old = "record r { q : share }\ninput l : list of r\nvalue x = sum(i in l : i.q)\n"
    new = "record r { q : share\n w : count }\ninput l : list of r\nvalue x = sum(i in l : i.q)\n"
    c = only(diff(old, new), name="r", field="field")
    assert (c.thing, c.op, c.part, c.new) == ("record", "added", "w", "w : count")


def test_helper_changes_show_in_expanded_formulas():
    old = "input a : points 0..10\nhelper twice(v) = v * 2\nindicator x max 40 = twice(a)\n"
    r = diff(old, old.replace("v * 2", "v * 3"))
    f = only(r, name="x", field="formula")
    assert (f.old, f.new) == ("a * 2", "a * 3")
    assert only(r, name="twice", thing="helper").field == "formula"


def test_json_shape_of_a_change():
    r = diff(BASE, BASE.replace("indicator x max 10 = a", "indicator x max 20 = a * 2").replace("0.5 * x", "0.5 * x / 2"))
    j = only(r, name="x", field="max").to_json()
    assert set(j) >= {"name", "thing", "op", "field", "part", "old", "new", "kinds", "old_source", "new_source"}
    assert j["old_source"] == {"file": "old.bgl", "line": 10, "end_line": 10}
    assert r.to_json()["counts"] == r.counts()


# ---------------------------------------------------------------- the real rule files


@pytest.fixture(scope="module")
def org_development():
    versions, diags = compile_paths([ROOT / "rules" / "org-development"])
    by = {v.version: v for v in versions}
    if "2020" not in by or "2021-proposed" not in by:
        pytest.fail("org-development 2020 or 2021-proposed does not compile:\n" + "\n".join(d.format() for d in diags))
    return by


def test_org_development_2020_vs_2021_proposed(org_development):
    r = diff_versions(org_development["2020"], org_development["2021-proposed"])
    consts = r.find(name="net_turnover", field="constant")
    assert [(c.old, c.new) for c in consts] == [("0.08", "0.09"), ("0.08", "0.09")]
    assert consts[0].old_source.file.endswith("org-development/2020.bgl")
    assert consts[0].new_source.file.endswith("org-development/2021-proposed.bgl")
    assert consts[0].kinds == ["central", "local"]
    assert r.find(name="strategic_planning_bonus", op="removed", thing="bonus")
    assert r.find(name="strategic_planning_score", op="added", thing="indicator")
    assert r.find(name="labour", field="formula") and r.find(name="it", field="formula")
    assert only(r, name="status").new == "proposed"
    # an amendment: unchanged things inherited from the base are not changes
    assert not r.find(name="hr_potential") and not r.find(name="block")
    # the base's source text is available for side-by-side views
    assert any(f.endswith("2020.bgl") for f in r.sources)


def test_independently_written_versions(org_development):
    if "2019" not in org_development:
        pytest.skip("org-development 2019 is not in the rules folder")
    r = diff_versions(org_development["2019"], org_development["2020"])
    assert r.changes and r.changes[0].thing == "metadata"
    assert r.find(name="effective_from")
    assert all(c.op in ("added", "removed", "changed") for c in r.changes)
