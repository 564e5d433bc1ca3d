"""Impact analysis: per-subject values, the transition matrix, ranks, movers and failures, exactly."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from ruletext import HEADER, compile_snippet
from dsl import decimals
from dsl.impact import ImpactAnalysis, analyze_impact
from dsl.registry import CompiledVersion, compile_paths
from dsl.report import render_impact

ROOT = Path(__file__).resolve().parents[2]

RULES = """
input a : points 0..100
input b : points 0..100
score s max 100 = weighted(W1 * a, W2 * b)
grade s {
  high    kk "жоғары" ru "высокий" en "high"    [80, 100]
  average kk "орташа" ru "средний" en "average" [50, 80)
  low     kk "төмен"  ru "низкий"  en "low"     [-inf, 50)
}
indicator a_only max 100 = a
"""


def version(w1: str, w2: str, path: str, extra: str = "") -> CompiledVersion:
    m, diags = compile_snippet(RULES.replace("W1", w1).replace("W2", w2) + extra, HEADER, path)
    assert m is not None, [d.format() for d in diags]
    return CompiledVersion(m)


OLD = version("0.5", "0.5", "old.bgl")
NEW = version("0.8", "0.2", "new.bgl")


def req(i: str, kind: str, a, b, **extra):
    return {"subject": {"id": i, "kind": kind, "name": f"Synthetic {i}", "synthetic": True},
            "inputs": {"a": Decimal(str(a)), "b": Decimal(str(b))}, **extra}


SUBJECTS = [
    req("S1", "central", 90, 70),   # 80 high    -> 86 high
    req("S2", "central", 90, 40),   # 65 average -> 80 high
    req("S3", "central", 30, 90),   # 60 average -> 42 low
    req("S4", "central", 50, 50),   # 50 average -> 50 average
    req("S5", "local", 40, 20),     # 30 low     -> 36 low
    req("S6", "local", 60, 30),     # 45 low     -> 54 average
]


def test_counts_values_and_transitions():
    r = analyze_impact(OLD, NEW, SUBJECTS)
    assert r.values == ["s"] and r.graded == ["s"] and r.rank_by == "s"
    by = {s.id: s for s in r.subjects}
    assert by["S2"].old.values["s"] == Decimal("65") and by["S2"].new.values["s"] == Decimal("80")
    assert by["S2"].delta("s") == Decimal("15")
    assert by["S3"].delta("s") == Decimal("-18")
    assert (by["S3"].old.grades["s"], by["S3"].new.grades["s"]) == ("average", "low")
    m = r.transitions["s"]
    assert m.old_grades == m.new_grades == ["high", "average", "low"]
    assert m.counts == [[1, 0, 0],
                        [1, 1, 1],
                        [0, 1, 1]]
    assert m.total == 6 and m.changed() == 3
    summary = r.summaries["s"]
    assert (summary.compared, summary.up, summary.down, summary.same) == (6, 4, 1, 1)
    assert (summary.grade_changed, summary.grade_up, summary.grade_down) == (3, 2, 1)
    assert summary.total_delta == Decimal(6 + 15 - 18 + 0 + 6 + 9)
    assert summary.mean_delta == Decimal("3.0000")
    assert summary.min_delta == Decimal(-18) and summary.max_delta == Decimal(15)
    assert r.counts() == {"subjects": 6, "scored_both": 6, "failed_old": 0, "failed_new": 0, "failed_any": 0,
                          "grade_changed_s": 3}


def test_ranks_within_each_kind_and_movers():
    r = analyze_impact(OLD, NEW, SUBJECTS, movers=3)
    by = {s.id: s for s in r.subjects}
    # central, old: S1 80, S2 65, S3 60, S4 50 ; new: S1 86, S2 80, S4 50, S3 42
    assert [(by[i].rank_old, by[i].rank_new) for i in ("S1", "S2", "S3", "S4")] == [(1, 1), (2, 2), (3, 4), (4, 3)]
    assert by["S3"].rank_change == -1 and by["S4"].rank_change == 1
    # local: S6 45 -> 54, S5 30 -> 36
    assert [(by[i].rank_old, by[i].rank_new) for i in ("S5", "S6")] == [(2, 2), (1, 1)]
    assert [s.id for s in r.movers] == ["S3", "S2", "S6"]


def test_equal_scores_share_a_rank():
    same = [req("A", "central", 50, 50), req("B", "central", 50, 50), req("C", "central", 10, 10)]
    r = analyze_impact(OLD, OLD, same)
    assert [s.rank_old for s in r.subjects] == [1, 1, 3]
    assert r.movers == [] and r.transitions["s"].changed() == 0


def test_failed_subjects_are_listed_not_dropped():
    bad = SUBJECTS[:2] + [
        req("BAD1", "central", 120, 10),                 # out of range under both
        {"subject": {"id": "BAD2", "kind": "servant"}, "inputs": {}},  # not a subject kind of either
        ValueError("line 9 is not valid JSON"),         # an unreadable line
    ]
    r = analyze_impact(OLD, NEW, bad)
    assert len(r.subjects) == 5
    assert r.counts()["failed_any"] == 3 and r.counts()["scored_both"] == 2
    b1 = next(s for s in r.subjects if s.id == "BAD1")
    assert b1.failed and "out of range" in b1.old.error and b1.old.issues[0]["field"] == "a"
    assert any("servant" in (s.old.error or "") for s in r.subjects)
    assert any(s.id == "line 5" and "not valid JSON" in s.old.error for s in r.subjects)
    assert len(r.failures) == 6  # each failing subject under each version
    assert r.transitions["s"].total == 2
    j = r.to_json()
    assert {f["id"] for f in j["failures"]} == {"BAD1", "BAD2", "line 5"}


def test_extra_values_and_a_value_only_one_version_has():
    new = version("0.8", "0.2", "new.bgl", "indicator b_only max 100 = b\n")
    r = analyze_impact(OLD, new, SUBJECTS[:2], values=["a_only", "b_only"])
    assert r.values == ["s", "a_only", "b_only"]
    s = r.subjects[0]
    assert s.old.values["b_only"] is None and s.new.values["b_only"] == Decimal(70)
    assert s.delta("b_only") is None and s.delta("a_only") == 0
    with pytest.raises(ValueError, match="nope"):
        ImpactAnalysis(OLD, NEW, ["nope"])


def test_inputs_by_version_and_inputs_only_one_version_uses():
    new = version("0.8", "0.2", "new.bgl", "input c : count\nindicator c_only = c\n")
    subject = req("S1", "central", 90, 70, inputs_by_version={"1": {"c": Decimal(3)}})
    subject["inputs"]["c"] = Decimal(5)  # the old version has no input c: it is not given to it
    r = analyze_impact(OLD, new, [subject], values=["c_only"])
    s = r.subjects[0]
    assert not s.failed, (s.old.error, s.new.error)
    assert s.new.values["c_only"] == Decimal(3)  # inputs_by_version of version "1" wins over inputs
    assert any("inputs only the other version uses" in n for n in r.notes)


def test_json_has_subjects_and_transitions_table():
    r = analyze_impact(OLD, NEW, SUBJECTS)
    j = json.loads(render_impact(r, "json"))
    assert isinstance(j["subjects"], list) and len(j["subjects"]) == 6
    s2 = next(s for s in j["subjects"] if s["id"] == "S2")
    assert s2["old"]["values"]["s"] == "65.0" and s2["new"]["values"]["s"] == "80.0" and s2["delta"]["s"] == "15.0"
    assert s2["old"]["grades"]["s"] == "average" and s2["new"]["grades"]["s"] == "high"
    table = {(t["old"], t["new"]): t["count"] for t in j["transitions"]}
    assert table == {("high", "high"): 1, ("average", "high"): 1, ("average", "average"): 1, ("average", "low"): 1,
                     ("low", "average"): 1, ("low", "low"): 1}
    assert j["matrices"]["s"]["counts"] == [[1, 0, 0], [1, 1, 1], [0, 1, 1]]
    # numbers are decimal strings, never floats
    assert all(isinstance(v, str) for s in j["subjects"] for v in s["old"]["values"].values())


def test_csv_and_text():
    r = analyze_impact(OLD, NEW, SUBJECTS)
    rows = list(csv.DictReader(io.StringIO(render_impact(r, "csv"))))
    assert len(rows) == 6
    assert rows[2]["id"] == "S3" and rows[2]["s_old"] == "60.0" and rows[2]["s_new"] == "42.0" and rows[2]["s_delta"] == "-18.0"
    assert (rows[2]["s_grade_old"], rows[2]["s_grade_new"], rows[2]["rank_change"]) == ("average", "low", "-1")
    text = render_impact(r, "text", "en")
    assert "Grade transitions: s" in text and "average → high: 1" in text and "\033[" not in text
    assert "\033[" in render_impact(r, "text", "en", color=True)
    assert "средний → высокий" in render_impact(r, "text", "ru")


def test_html_is_self_contained_with_an_svg_chart():
    r = analyze_impact(OLD, NEW, SUBJECTS)
    page = render_impact(r, "html", "en")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</svg>" in page
    assert "<circle" in page and "stroke-dasharray" in page  # scores and grade thresholds
    for external in ("http://", "https://", "<script", "<link"):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Grade transitions" in page and "S3" in page


@pytest.fixture(scope="module")
def org():
    versions, diags = compile_paths([ROOT / "rules" / "org-development"])
    by = {v.version: v for v in versions}
    if "2020" not in by or "2021-proposed" not in by:
        pytest.fail("org-development does not compile:\n" + "\n".join(d.format() for d in diags))
    return by


def test_example_subjects_show_the_net_turnover_transitions(org):
    from dsl.cli import read_requests

    path = ROOT / "examples" / "org-development-subjects.jsonl"
    requests = read_requests(str(path))
    assert len(requests) >= 30
    raws = [raw for _, raw in requests]
    assert all(r["subject"]["synthetic"] is True and r["subject"]["id"].startswith("SYNTH-") for r in raws)
    assert {r["subject"]["kind"] for r in raws} == {"central", "local"}
    r = analyze_impact(org["2020"], org["2021-proposed"], requests, values=["net_turnover"])
    assert r.counts()["failed_any"] == 0
    m = r.transitions["block"]
    assert m.changed() == 8
    assert m.count("average", "high") == 3 and m.count("low", "average") == 3 and m.count("ineffective", "low") == 2
    # net turnover goes up wherever 0.06 < t < 0.09, never down
    deltas = [s.delta("net_turnover") for s in r.subjects]
    assert all(d >= 0 for d in deltas) and sum(1 for d in deltas if d > 0) >= 15


def test_citizen_interaction_example_subjects():
    versions, diags = compile_paths([ROOT / "rules" / "citizen-interaction"])
    by = {v.version: v for v in versions}
    if "2020" not in by or "2021-proposed" not in by:
        pytest.skip("citizen-interaction 2020 / 2021-proposed do not compile yet")
    text = (ROOT / "examples" / "citizen-interaction-subjects.jsonl").read_text(encoding="utf-8")
    raws = [decimals.loads(line) for line in text.splitlines() if line.strip()]
    assert len(raws) >= 30 and all(r["subject"]["synthetic"] is True for r in raws)
    r = analyze_impact(by["2020"], by["2021-proposed"], raws)
    assert r.counts()["failed_any"] == 0, [f for f in r.to_json()["failures"]][:3]
    assert r.transitions["block"].changed() > 0
