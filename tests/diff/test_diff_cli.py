"""`bagalau diff` and `bagalau impact` from the command line: outputs, formats and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dsl import cli

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = str(ROOT / "examples" / "org-development-subjects.jsonl")


@pytest.fixture(scope="module", autouse=True)
def org_rules(tmp_path_factory):
    """A rules folder with only the two versions compared (compiles in half the time of the whole folder)."""
    global ORG
    root = tmp_path_factory.mktemp("rules")
    (root / "org-development").mkdir()
    for name in ("2020.bgl", "2021-proposed.bgl"):
        shutil.copy(ROOT / "rules" / "org-development" / name, root / "org-development" / name)
    ORG = str(root)
    yield root


ORG = ""


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diff_text_shows_the_net_turnover_change(capsys):
    code, out, err = run(capsys, "diff", "org-development@2020", "org-development@2021-proposed", "--rules", ORG, "--lang", "en")
    assert code == 0, err
    assert "indicator net_turnover — Net staff turnover" in out
    assert "constant 0.08 → 0.09" in out and "2020.bgl:99" in out and "2021-proposed.bgl:21" in out
    assert "\033[" not in out  # not a terminal: no colours


def test_diff_colours_when_asked(capsys):
    code, out, _ = run(capsys, "diff", "org-development@2020", "org-development@2021-proposed", "--rules", ORG, "--color", "always")
    assert code == 0 and "\033[" in out


def test_diff_json_is_a_list_of_changes(capsys):
    code, out, _ = run(capsys, "diff", "org-development@2020", "org-development@2021-proposed", "--rules", ORG, "--format", "json")
    assert code == 0
    changes = json.loads(out)
    assert isinstance(changes, list)
    nt = [c for c in changes if c["name"] == "net_turnover" and c["field"] == "constant"]
    assert {(c["old"], c["new"]) for c in nt} == {("0.08", "0.09")}
    assert nt[0]["old_source"]["file"].endswith("2020.bgl") and nt[0]["new_source"]["line"] == 21


def test_diff_markdown_and_html_to_a_file(capsys, tmp_path):
    code, out, _ = run(capsys, "diff", "org-development@2020", "org-development@2021-proposed", "--rules", ORG, "--format", "markdown")
    assert code == 0 and out.startswith("# Semantic diff") and "| constant [t >= 0.08] | `0.08` | `0.09` |" in out
    page = tmp_path / "d.html"
    code, out, err = run(capsys, "diff", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                         "--format", "html", "--lang", "ru", "--output", str(page))
    assert code == 0 and out == "" and "wrote" in err
    html = page.read_text(encoding="utf-8")
    assert "Прежняя версия" in html and "Персоналдың таза ауысымдылығы" in html  # no ru label: falls back to kk
    assert "<del>0.08</del>" in html and "<ins>0.09</ins>" in html
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert external not in html, f"the page must be self-contained: found {external}"


def test_diff_two_rule_files(capsys):
    code, out, err = run(capsys, "diff", f"{ORG}/org-development/2020.bgl", f"{ORG}/org-development/2021-proposed.bgl",
                         "--rules", ORG, "--lang", "en")
    assert code == 0, err
    assert "constant 0.08 → 0.09" in out


def test_diff_misuse(capsys):
    code, _, err = run(capsys, "diff", "org-development@2020", "org-development@1999", "--rules", ORG)
    assert code == 2 and "no version '1999'" in err
    code, _, err = run(capsys, "diff", "nope@1", "org-development@2020", "--rules", ORG)
    assert code == 2 and "unknown methodology" in err
    code, _, err = run(capsys, "diff", "org-development", "org-development@2020", "--rules", ORG)
    assert code == 2 and "METHODOLOGY@VERSION" in err
    code, _, err = run(capsys, "diff", "missing.bgl", "org-development@2020", "--rules", ORG)
    assert code == 2 and "cannot read missing.bgl" in err


def test_impact_text_shows_the_grade_transitions(capsys):
    code, out, err = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                         "--input", SUBJECTS, "--lang", "en")
    assert code == 0, err
    assert "34 subjects: 34 scored under both versions" in out
    assert "Grade transitions: block" in out
    assert "moved: average → high: 3, low → average: 3, ineffective → low: 2" in out
    assert "Largest movers by block" in out
    assert err == ""  # progress only on a terminal or with --progress


def test_impact_progress_json_and_values(capsys):
    code, out, err = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                         "--input", SUBJECTS, "--format", "json", "--values", "net_turnover,personnel", "--progress")
    assert code == 0
    assert "impact: 34/34 subjects" in err
    j = json.loads(out)
    assert len(j["subjects"]) == 34 and j["values"] == ["block", "it", "net_turnover", "personnel"]
    moved = sum(t["count"] for t in j["transitions"] if t["score"] == "block" and t["changed"])
    assert moved == 8


def test_impact_csv(capsys):
    code, out, _ = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                       "--input", SUBJECTS, "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("line,id,kind,name,synthetic,block_old,block_new,block_delta,block_grade_old,block_grade_new")
    assert len(lines) == 35


def test_impact_exit_1_when_a_subject_fails(capsys, tmp_path):
    good = Path(SUBJECTS).read_text(encoding="utf-8").splitlines()[0]
    bad = json.dumps({"subject": {"id": "SYNTH-BAD", "kind": "central"}, "inputs": {"leaders_left": -1}})
    f = tmp_path / "s.jsonl"
    f.write_text(good + "\n" + bad + "\n{not json\n", encoding="utf-8")
    code, out, _ = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                       "--input", str(f), "--format", "json")
    assert code == 1
    j = json.loads(out)
    assert [s["id"] for s in j["subjects"]] == ["SYNTH-OD-C01", "SYNTH-BAD", "line 3"]
    assert j["counts"]["failed_any"] == 2
    assert any("leaders_left" in x["error"] for x in j["failures"])


def test_impact_misuse(capsys, tmp_path):
    code, _, err = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                       "--input", str(tmp_path / "none.jsonl"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "impact", "org-development@2020", "org-development@2021-proposed", "--rules", ORG,
                       "--input", SUBJECTS, "--values", "nope")
    assert code == 2 and "nope" in err
    code, _, err = run(capsys, "impact", "org-development@2020", "org-development@3000", "--rules", ORG, "--input", SUBJECTS)
    assert code == 2
