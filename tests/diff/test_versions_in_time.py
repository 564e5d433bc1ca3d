"""Version selection by date (Registry.in_force) and the immutability of versions that were in force."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ruletext import HEADER
from dsl.errors import CompileFailed, NoVersionInForce
from dsl.registry import load_registry, write_lock, compile_paths


def header(version: str, start: str | None, status: str = "in_force", end: str | None = None,
           subjects: str = "central, local", extends: str | None = None) -> str:
    h = HEADER.replace('version "1"', f'version "{version}"' + (f' extends "{extends}"' if extends else ""))
    h = h.replace("subjects central, local", f"subjects {subjects}").replace("status in_force", f"status {status}")
    if start is None:
        return h.replace("  effective from 2020-01-01\n", "")
    return h.replace("effective from 2020-01-01", f"effective from {start}" + (f" to {end}" if end else ""))


def write(root: Path, version: str, text: str) -> Path:
    p = root / "demo" / f"{version}.bgl"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def rules(tmp_path):
    """2018 (repealed), 2020 (in force), 2022-proposed (proposed, not dated), 2021-local (local only, dated)."""
    write(tmp_path, "2018", header("2018", "2018-01-01", "repealed") + "indicator x = 1\n")
    write(tmp_path, "2020", header("2020", "2020-07-01") + "indicator x = 2\n")
    write(tmp_path, "2022-proposed", header("2022-proposed", None, "proposed") + "indicator x = 3\n")
    return tmp_path


def test_before_the_first_version_nothing_is_in_force(rules):
    reg = load_registry(rules)
    with pytest.raises(NoVersionInForce) as e:
        reg.in_force("demo", date(2017, 12, 31))
    assert "2017-12-31" in str(e.value) and "2018 from 2018-01-01" in str(e.value)


def test_first_day_and_between_versions(rules):
    reg = load_registry(rules)
    assert reg.in_force("demo", date(2018, 1, 1)).version == "2018"
    assert reg.in_force("demo", date(2019, 6, 30)).version == "2018"
    # the day before the next version starts is the last day of the previous one
    assert reg.in_force("demo", date(2020, 6, 30)).version == "2018"
    assert reg.in_force("demo", date(2020, 7, 1)).version == "2020"


def test_after_the_last_version_it_stays_in_force(rules):
    reg = load_registry(rules)
    assert reg.in_force("demo", date(2035, 1, 1)).version == "2020"
    # a proposed version is never selected by date
    assert all(reg.in_force("demo", date(y, 1, 1)).status != "proposed" for y in range(2018, 2030))


def test_explicit_end_date_leaves_a_gap(tmp_path):
    write(tmp_path, "2018", header("2018", "2018-01-01", "repealed", end="2018-12-31") + "indicator x = 1\n")
    write(tmp_path, "2020", header("2020", "2020-01-01") + "indicator x = 2\n")
    reg = load_registry(tmp_path)
    assert reg.in_force("demo", date(2018, 12, 31)).version == "2018"
    with pytest.raises(NoVersionInForce):
        reg.in_force("demo", date(2019, 6, 1))
    assert reg.in_force("demo", date(2020, 1, 1)).version == "2020"


def test_selection_by_subject_kind(tmp_path):
    write(tmp_path, "2018", header("2018", "2018-01-01", "repealed") + "indicator x = 1\n")
    write(tmp_path, "2019-local", header("2019-local", "2019-01-01", subjects="local") + "indicator x = 2\n")
    reg = load_registry(tmp_path)
    assert reg.in_force("demo", date(2019, 5, 1), "local").version == "2019-local"
    assert reg.in_force("demo", date(2019, 5, 1), "central").version == "2018"
    with pytest.raises(NoVersionInForce):
        reg.in_force("demo", date(2019, 5, 1), "servant")


def test_the_version_used_is_reported(rules):
    from dsl.evaluate import EvalRequest

    reg = load_registry(rules)
    result = reg.in_force("demo", date(2021, 3, 1), "central").evaluate(EvalRequest("S1", "central", {}))
    assert (result.methodology, result.version) == ("demo", "2020")
    assert result.content_hash.startswith("sha256:")


def test_overlapping_versions_do_not_compile(tmp_path):
    write(tmp_path, "2018", header("2018", "2018-01-01", "repealed", end="2020-12-31") + "indicator x = 1\n")
    write(tmp_path, "2020", header("2020", "2020-01-01") + "indicator x = 2\n")
    with pytest.raises(CompileFailed) as e:
        load_registry(tmp_path)
    assert "E701" in str(e.value)


def test_a_locked_version_cannot_be_edited(rules):
    versions, _ = compile_paths([rules])
    locked = write_lock(versions, rules)
    assert set(locked) == {"demo@2018", "demo@2020"}  # proposed versions are not locked
    write(rules, "2020", header("2020", "2020-07-01") + "indicator x = 20\n")
    with pytest.raises(CompileFailed) as e:
        load_registry(rules)
    assert "E702" in str(e.value) and "create a new version" in str(e.value)
    # a proposed version may still change
    write(rules, "2020", header("2020", "2020-07-01") + "indicator x = 2\n")
    write(rules, "2022-proposed", header("2022-proposed", None, "proposed") + "indicator x = 4\n")
    assert load_registry(rules).get("demo", "2022-proposed").status == "proposed"
