"""Grammar and syntax-error messages."""

from decimal import Decimal

import pytest

from dsl import ast
from dsl.parser import ParseFailed, parse
from ruletext import HEADER


def parse_body(body: str) -> ast.RuleFile:
    return parse(HEADER + body, "t.bgl")


def test_header_fields():
    rf = parse_body("")
    h = rf.header
    assert (h.methodology, h.version, h.status) == ("demo", "1", "in_force")
    assert h.title == {"kk": "Демо", "en": "Demo"}
    assert h.subjects == ["central", "local"]
    assert str(h.effective_from) == "2020-01-01"


def test_every_node_has_a_span():
    rf = parse_body("input a : count\nindicator x max 10 = a * 2\n")
    d = rf.items[1]
    assert isinstance(d, ast.Definition)
    assert (d.span.line, d.span.column) == (8, 1)
    assert (d.expr.span.line, d.expr.span.column) == (8, 22)
    assert d.expr.left.span.column == 22 and d.expr.right.span.column == 26


def test_numbers_are_exact_decimals():
    rf = parse_body("indicator x = 0.1 + 0.2\n")
    e = rf.items[0].expr
    assert e.left.value == Decimal("0.1") and isinstance(e.left.value, Decimal)


def test_precedence_and_left_associativity():
    rf = parse_body("indicator x = 10 - 4 - 3 * 2 / 1\n")
    e = rf.items[0].expr
    assert e.op == "-" and e.left.op == "-" and e.right.op == "/"


def test_block_body_with_lets_and_when():
    rf = parse_body("""
input a : count
indicator x max 10 {
  let t = a / 3
  result = when { t <= 1 -> 10  else -> 0 }
}
""")
    d = rf.items[1]
    assert [l.name for l in d.lets] == ["t"]
    assert isinstance(d.expr, ast.When) and len(d.expr.branches) == 1


def test_band_table_intervals():
    rf = parse_body("table t(x: percent) { [90, 100] -> 10  [0, 90) -> 0 }\n")
    bands = rf.items[0].bands
    assert bands[0].interval.lo_closed and bands[0].interval.hi_closed
    assert bands[1].interval.contains(Decimal("89.99")) and not bands[1].interval.contains(Decimal(90))


def test_labels_default_to_kazakh():
    rf = parse_body('input a : count "саны" en "count"\n')
    assert rf.items[0].labels == {"kk": "саны", "en": "count"}


def test_tests_parse_literals():
    rf = parse_body('test "x" for local { given a = [{b: 1.5, c: true}], d = -2 expect e = 3 within 0.1, grade e = high }\n')
    t = rf.items[0]
    assert t.subject_kind == "local"
    assert t.givens[0].value == [{"b": Decimal("1.5"), "c": True}]
    assert t.givens[1].value == Decimal(-2)
    assert t.expects[0].tolerance == Decimal("0.1")
    assert t.expects[1].kind == "grade"


def test_syntax_error_names_file_line_column_and_expected_tokens():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER + "indicator x max 10 = 1 +\n", "bad.bgl")
    d = info.value.diagnostics[0]
    assert d.code == "E100"
    assert d.file == "bad.bgl"
    text = d.format()
    assert "bad.bgl:" in text and "^" in text and "expected" in text


def test_syntax_error_points_at_the_token():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER + "indicator x max 10 = a b\n", "bad.bgl")
    d = info.value.diagnostics[0]
    assert (d.line, d.column) == (7, 24)
    assert "unexpected 'b'" in d.message


def test_several_syntax_errors_are_reported_at_once():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER + "indicator x = 1 +\nindicator y = 2 *\nindicator z = )\n", "bad.bgl")
    assert len(info.value.diagnostics) >= 2


def test_bad_character():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER + "indicator x = 1 $ 2\n", "bad.bgl")
    assert info.value.diagnostics[0].code == "E101"


def test_bad_date_literal_is_a_diagnostic():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER.replace("2020-01-01", "2020-13-45"), "bad.bgl")
    assert info.value.diagnostics[0].code == "E302"


def test_hint_for_block_without_result():
    with pytest.raises(ParseFailed) as info:
        parse(HEADER + "indicator x { let a = 1\n = a }\n", "bad.bgl")
    assert "result" in info.value.diagnostics[0].message
