"""The bagalau CLI, run as a user runs it: a real subprocess of the installed console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ruletext import ROOT, RULES

BAGALAU = str(Path(sys.executable).with_name("bagalau"))
OD = RULES / "org-development"


def run(*args, stdin=None, cwd=ROOT):
    p = subprocess.run([BAGALAU, *map(str, args)], capture_output=True, text=True, input=stdin, cwd=cwd, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_check_passes_on_shipped_rules():
    code, out, _ = run("check", OD)
    assert code == 0, out
    assert "0 error(s)" in out


def test_check_reports_errors_with_location_and_caret(tmp_path):
    bad = tmp_path / "demo" / "1.bgl"
    bad.parent.mkdir()
    bad.write_text('methodology demo version "1"\n  title kk "Д"\n  basis "b"\n  effective from 2020-01-01\n'
                   '  status in_force\n  subjects central\ninput a : count\nindicator x max 10 = a + missing\n')
    code, out, _ = run("check", tmp_path)
    assert code == 1
    assert f"{bad}:8:26: error E200 unknown-name: unknown name missing" in out
    assert "^^^^^^^" in out


def test_check_json_format(tmp_path):
    code, out, _ = run("check", OD, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["errors"] == [] and "org-development@2020" in data["versions"]


def test_check_unreadable_path():
    code, _, err = run("check", "no/such/folder")
    assert code == 2 and "no such file or folder" in err


def test_test_command_ends_with_counts():
    code, out, _ = run("test", OD)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.endswith("0 failed") and "passed" in last


def test_test_command_fails_on_a_failing_rule_test(tmp_path):
    folder = tmp_path / "od"
    shutil.copytree(OD, folder)
    f = folder / "2020.bgl"
    f.write_text(f.read_text().replace("expect block = 92.9, grade block = high", "expect block = 93.0, grade block = high"))
    code, out, _ = run("test", folder)
    assert code == 1
    assert "FAIL org-development@2020: Justice 2019" in out
    assert "block = 92.9, expected 93.0" in out
    assert out.strip().splitlines()[-1].endswith("1 failed")


def test_eval_single_request_json():
    request = '{"subject": {"id": "justice", "kind": "central"}, "inputs": {"personnel": "87.72", "it": 97.98}}'
    code, out, _ = run("eval", "org-development@2020", "--input", "-", "--only", "block", "--rules", OD, stdin=request)
    assert code == 0, out
    result = json.loads(out)
    assert result["values"] == {"block": "92.9"} and result["grades"] == {"block": "high"}
    assert result["supplied"] == ["it", "personnel"]
    assert result["subject"] == {"id": "justice", "kind": "central"}


def test_eval_json_lines_scores_good_lines_and_reports_bad_ones(tmp_path):
    lines = [
        '{"subject": {"id": "a", "kind": "central"}, "inputs": {"personnel": "87.72", "it": "97.98"}}',
        '{"subject": {"id": "b", "kind": "central"}, "inputs": {"personnel": "187.72", "it": "97.98"}}',
        'not json',
        '{"subject": {"id": "c", "kind": "local"}, "inputs": {"personnel": "50", "it": "40"}}',
    ]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    code, out, _ = run("eval", "org-development@2020", "--input", f, "--only", "block", "--rules", OD)
    assert code == 1
    rows = [json.loads(l) for l in out.strip().splitlines()]
    assert len(rows) == 4
    assert rows[0]["values"]["block"] == "92.9"
    assert rows[1]["line"] == 2 and rows[1]["error"]["issues"][0]["field"] == "personnel"
    assert rows[2]["line"] == 3 and "not valid JSON" in rows[2]["error"]["message"]
    assert rows[3]["values"]["block"] == "45.0" and rows[3]["grades"]["block"] == "ineffective"


def test_eval_explain_text_in_english():
    request = '{"subject": {"id": "x", "kind": "central"}, "inputs": {"leaders_left": 2, "staff_left": 5, "leaders_avg": 10, "staff_avg": 90}}'
    code, out, _ = run("eval", "org-development@2020", "--input", "-", "--only", "net_turnover", "--explain",
                       "--lang", "en", "--format", "text", "--rules", OD, stdin=request)
    assert code == 0, out
    assert "Net staff turnover" in out and "else branch taken" in out and "2020.bgl" in out


def test_eval_as_of_picks_the_version_in_force():
    request = '{"subject": {"id": "x", "kind": "central"}, "inputs": {"personnel": "80", "it": "80"}}'
    code, out, _ = run("eval", "org-development", "--as-of", "2020-06-01", "--input", "-", "--only", "block",
                       "--rules", OD, stdin=request)
    assert code == 0, out
    assert json.loads(out)["version"] == "2020"


@pytest.mark.parametrize("args,message", [
    (["eval", "no-such@2020", "--input", "-"], "unknown methodology"),
    (["eval", "org-development@1999", "--input", "-"], "has no version"),
    (["eval", "org-development@2020", "--input", "/no/such/file.json"], "cannot read"),
    (["eval", "org-development", "--input", "-"], "name a version"),
])
def test_eval_misuse_exits_2_with_a_message(args, message):
    code, _, err = run(*args, "--rules", OD, stdin="{}")
    assert code == 2
    assert message in err


def test_eval_with_broken_rules_exits_3(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "1.bgl").write_text("methodology x version \"1\"\nindicator = \n")
    code, _, err = run("eval", "x@1", "--input", "-", "--rules", tmp_path, stdin="{}")
    assert code == 3 and "do not compile" in err


def _planted(tmp_path, old: str, new: str) -> tuple[Path, int]:
    folder = tmp_path / "org-development"
    folder.mkdir()
    text = (OD / "2020.bgl").read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    (folder / "2020.bgl").write_text(text.replace(old, new, 1))
    return folder, line


def test_block_weights_0_4_and_0_5_are_refused_with_the_line(tmp_path):
    folder, line = _planted(tmp_path, "weighted(0.5 * personnel, 0.5 * it)", "weighted(0.4 * personnel, 0.5 * it)")
    code, out, _ = run("check", folder)
    assert code == 1
    assert f"2020.bgl:{line}:3: error E400 weights-not-one: weights must sum to exactly 1, but 0.4 + 0.5 = 0.9" in out


def test_planted_syntax_error_is_refused_with_the_line(tmp_path):
    folder, line = _planted(tmp_path, "hr_potential + labour + meritocracy - late_training",
                            "hr_potential + labour + * meritocracy - late_training")
    code, out, _ = run("check", folder)
    assert code == 1
    assert f"2020.bgl:{line}:27: error E100 syntax: unexpected '*'" in out


def test_editing_a_locked_in_force_version_is_refused(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    f = rules / "org-development" / "2020.bgl"
    f.write_text(f.read_text().replace("t <= 0.06 -> 10 ", "t <= 0.05 -> 10 ", 1))
    code, out, _ = run("check", rules)
    assert code == 1
    assert "E702 locked-version-changed: org-development@2020 is locked (in_force)" in out
    assert "create a new version" in out
