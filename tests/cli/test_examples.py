"""Every example request under examples/ scores under the version its name gives."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ruletext import ROOT, RULES

BAGALAU = str(Path(sys.executable).with_name("bagalau"))
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def target(path: Path) -> str:
    m = re.fullmatch(r"(.+?)-(\d{4}(?:-proposed)?)", path.stem)
    assert m, f"example {path.name} must be named METHODOLOGY-VERSION.json"
    return f"{m.group(1)}@{m.group(2)}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_scores(path):
    p = subprocess.run([BAGALAU, "eval", target(path), "--input", str(path), "--rules", str(RULES), "--explain"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(p.stdout)
    assert result["values"] and all(e["formula"] for e in result["explanation"])
