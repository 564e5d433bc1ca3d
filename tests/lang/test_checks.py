"""One test per compiler diagnostic code: each snippet triggers exactly the code it names."""

from pathlib import Path

import pytest

from dsl.compiler import compile_text
from dsl.diagnostics import CODES
from dsl.registry import compile_paths, write_lock
from ruletext import HEADER, codes, compile_snippet

CASES = {
    "E100": "indicator x = 1 +\n",
    "E101": "indicator x = 1 ~ 2\n",
    "E200": "indicator x = missing_input\n",
    "E201": "input a : count\ninput a : count\nindicator x = a\n",
    "W202": "input a : count\ninput unused : count\nindicator x = a\n",
    "E203": "indicator x = y\nindicator y = x\n",
    "E204": "input a : count\nindicator x = sqrt(a)\n",
    "E205": "input a : count\nindicator x = clamp(a, 1)\n",
    "E206": "record r { f : count }\ninput l : list of r\nindicator x = sum(i in l : i.g)\n",
    "E207": "for servant { indicator y = 1 }\nindicator x = 1\n",
    "E300": "input flag : bool\nindicator x = flag + 1\n",
    "E301": "input p : points 0..10\ninput s : share\nindicator x = when { p > s -> 1 else -> 0 }\n",
    "E302": "input a : count default true\nindicator x = a\n",
    "E400": "input a : points 0..10\ninput b : points 0..10\nscore x = weighted(0.5 * a, 0.4 * b)\n",
    "E401": "input s : percent\ntable t(v: percent) { [50, 100] -> 1  [0, 40) -> 0 }\nindicator x = t(s)\n",
    "E402": "input s : percent\ntable t(v: percent) { [50, 100] -> 1  [0, 60) -> 0 }\nindicator x = t(s)\n",
    "E403": "input a : points 0..100\nscore x max 100 = a\ngrade x { high [90, 100]  low [0, 80) }\n",
    "E404": "input a : points 0..100\nscore x max 100 = a\ngrade x { high [80, 100]  low [0, 90) }\n",
    "E405": "input s : percent\ntable t(v: percent) { [50, 40] -> 1  [0, 100] -> 0 }\nindicator x = t(s)\n",
    "E500": "input a : points 0..20\ninput b : points 0..15\ncriterion x max 30 = a + b\n",
    "W501": "input f : count\ninput p : count > 0\nindicator x max 40 = (1 - ratio(f, p, zero: 0) * 1000) * 40\n",
    "E502": "input a : count\ninput b : count\nindicator x = a / b\n",
    "E503": "input a : percent 0..150\nvalue x = a\n",
    "E604": "input a : count\noverride indicator x = a\n",
    "E700": "indicator x = 1\n",
    "E800": 'indicator x = 1\ntest "bad" { expect y = 1 }\n',
}

HEADERS = {"E700": HEADER.replace('  basis "test order"\n', "")}


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_code(code):
    header = HEADERS.get(code, HEADER)
    _, diags = compile_snippet(CASES[code], header)
    assert code in codes(diags), "\n".join(d.format() for d in diags)
    d = next(d for d in diags if d.code == code)
    assert d.severity == CODES[code][0]
    assert d.file == "demo.bgl" and d.line > 0 and d.column > 0
    assert d.source_line, "every diagnostic shows its source line"
    assert "^" in d.format()


BASE = HEADER + "input a : count 0..50\nindicator x max 100 = a\nindicator y = x\n"


def lookup(models):
    return lambda m, v: models.get((m, v))


def base_model():
    model, diags = compile_text(BASE, "base.bgl")
    assert model is not None, diags
    return {("demo", "1"): model}


AMEND = '''methodology demo version "2" extends "1"
  title kk "Демо 2"
  basis "proposal"
  status proposed
'''


def test_E600_override_unknown_in_amendment():
    _, diags = compile_text(AMEND + "override indicator nope = 1\n", "a.bgl", lookup(base_model()))
    assert "E600" in codes(diags)


def test_E601_remove_unknown():
    _, diags = compile_text(AMEND + "remove nope\n", "a.bgl", lookup(base_model()))
    assert "E601" in codes(diags)


def test_E602_redefined_without_override():
    _, diags = compile_text(AMEND + "indicator x = 2\n", "a.bgl", lookup(base_model()))
    assert "E602" in codes(diags)


def test_E603_unknown_base():
    _, diags = compile_text(AMEND.replace('extends "1"', 'extends "9"'), "a.bgl", lookup(base_model()))
    assert codes(diags) == ["E603"]


def test_amendment_overrides_and_removes():
    model, diags = compile_text(AMEND + "override indicator x max 100 = a * 2\nremove y\nindicator z = x + 1\n",
                                "a.bgl", lookup(base_model()))
    assert model is not None, [d.format() for d in diags]
    scope = model.scopes["central"]
    assert set(scope.definitions) == {"x", "z"}
    assert scope.definitions["x"].span.file == "a.bgl"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / "demo" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_E102_unreadable_file(tmp_path):
    p = tmp_path / "demo" / "1.bgl"
    p.parent.mkdir()
    p.write_bytes(b"\xff\xfe not utf-8")
    _, diags = compile_paths([tmp_path])
    assert codes(diags) == ["E102"]


def test_E701_overlapping_versions(tmp_path):
    _write(tmp_path, "1.bgl", HEADER.replace("effective from 2020-01-01", "effective from 2020-01-01 to 2021-06-30") + "indicator x = 1\n")
    _write(tmp_path, "2.bgl", HEADER.replace('version "1"', 'version "2"').replace("2020-01-01", "2021-01-01") + "indicator x = 2\n")
    _, diags = compile_paths([tmp_path])
    assert "E701" in codes(diags)


def test_E702_locked_version_changed(tmp_path):
    p = _write(tmp_path, "1.bgl", HEADER + "indicator x = 1\n")
    versions, _ = compile_paths([tmp_path])
    write_lock(versions, tmp_path)
    p.write_text(HEADER + "indicator x = 2\n")
    _, diags = compile_paths([tmp_path], lock_root=tmp_path)
    assert codes(diags) == ["E702"]
    assert "create a new version" in diags[0].message


def test_E703_duplicate_version(tmp_path):
    _write(tmp_path, "1.bgl", HEADER + "indicator x = 1\n")
    _write(tmp_path, "copy.bgl", HEADER + "indicator x = 1\n")
    _, diags = compile_paths([tmp_path])
    assert "E703" in codes(diags)


def test_E110_is_not_used_or_is_tested():
    # every registered code has a test in this file
    tested = set(CASES) | {"E600", "E601", "E602", "E603", "E102", "E701", "E702", "E703"}
    unused = {"E110", "W504"}  # reserved
    assert set(CODES) - tested - unused == set()


def test_all_problems_reported_at_once_and_sorted():
    _, diags = compile_snippet("indicator x = nope1\nindicator y = nope2 + z(1)\n")
    assert codes(diags) == ["E200", "E200", "E204"]
    assert [d.line for d in diags] == sorted(d.line for d in diags)


def test_warnings_do_not_stop_compilation():
    model, diags = compile_snippet("input a : count\ninput unused : count\nindicator x = a\n")
    assert model is not None and [d.severity for d in diags] == ["warning"]


def test_suggests_a_close_name():
    _, diags = compile_snippet("input leaders_left : count\nindicator x = leader_left\n")
    assert "did you mean leaders_left" in next(d for d in diags if d.code == "E200").message


def test_range_analysis_narrows_when_branches():
    model, diags = compile_snippet("""
input a : count
input b : decimal > 0
indicator c max 10 {
  let t = a / b
  result = when { t <= 0.06 -> 10  t >= 0.08 -> 0  else -> 10 * (0.08 - t) / 0.03 }
}
""")
    assert model is not None and not diags, [d.format() for d in diags]
    r = model.scopes["central"].ranges["c"]
    assert (r.lo, r.hi) == (0, 10)


def test_division_guarded_by_when_is_accepted():
    model, diags = compile_snippet("input a : count\ninput n : count\nindicator x = when { n == 0 -> 0 else -> a / n }\n")
    assert "E502" not in codes(diags)


def test_bound_referencing_another_input_makes_ratio_at_most_one():
    model, diags = compile_snippet("input due : count\ninput done : count <= due\nindicator x max 5 = 5 * ratio(done, due, zero: 1)\n")
    assert model is not None, [d.format() for d in diags]


def test_variant_replaces_a_definition_for_one_kind():
    model, diags = compile_snippet("""
input a : points 0..10
indicator x max 10 = a
for local {
  indicator x max 10 = a / 2
}
""")
    assert model is not None
    assert "a / 2" not in str(model.scopes["central"].bodies["x"].expr)
    from dsl.printer import format_expr
    assert format_expr(model.scopes["local"].bodies["x"].expr) == "a / 2"


def test_helpers_are_expanded():
    model, diags = compile_snippet("input a : points 0..10\nhelper twice(v) = v * 2\nindicator x max 20 = twice(a)\n")
    assert model is not None, [d.format() for d in diags]
    from dsl.printer import format_expr
    assert format_expr(model.scopes["central"].bodies["x"].expr) == "a * 2"


def test_helper_arguments_may_use_list_items_and_lets():
    model, diags = compile_snippet("""
record kti { quality : points 0..3  done : points 0..1 }
input ktis : list of kti
helper result(q, d) = q / 3 * d
value mean_result = mean(k in ktis : result(k.quality, k.done))
""")
    assert model is not None, [d.format() for d in diags]


def test_grade_scale_covers_the_computed_range_when_no_min_is_declared():
    model, diags = compile_snippet("input a : points 0..100\nscore x max 100 = a\ngrade x { high [50, 100]  low [0, 50) }\n")
    assert model is not None, [d.format() for d in diags]


def test_points_over_their_maximum_may_become_a_percent():
    model, diags = compile_snippet("input a : points 0..40\nvalue share_of_max : percent max 100 = a / 40 * 100\n")
    assert model is not None, [d.format() for d in diags]
