"""Parse rule-file text into the AST. Lark (LALR) is built once; its errors become diagnostics."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, DiagnosticSink, Span

GRAMMAR = Path(__file__).with_name("grammar.lark")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Lark's terminal names, as a methodologist would recognise them in "expected ..." lists.
TOKEN_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "INT": "a whole number",
    "STRING": 'a quoted text "..."',
    "DATE": "a date YYYY-MM-DD",
    "METH_ID": "a methodology id like org-development",
    "UNIT": "a unit (count, decimal, percent, share, points, number)",
    "KIND": "a definition kind (indicator, criterion, direction, score, bonus, penalty, coefficient, value)",
    "LANG": "a language (kk, ru, en)",
    "ROUND_MODE": "a rounding mode (half-up, half-even, half-down, up, down, ceiling, floor)",
    "COMP_OP": "a comparison (<, <=, >, >=, ==, !=)",
    "AGG": "an aggregate (sum, mean, count, min, max)",
    "INF": "inf",
    "UNSTATED": "unstated",
    "$END": "the end of the file",
}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe_expected(names: set[str], parser: Lark) -> list[str]:
    out = []
    for n in sorted(names):
        if n in TOKEN_NAMES:
            out.append(TOKEN_NAMES[n])
            continue
        try:
            pattern = parser.get_terminal(n).pattern
            out.append(f"'{pattern.value}'" if pattern.type == "str" else n)
        except KeyError:
            out.append(n)
    return sorted(set(out))


class ParseFailed(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


def parse(text: str, path: str) -> ast.RuleFile:
    """Parse one rule file. Raises ParseFailed with every syntax problem found (Lark recovers once per line)."""
    sink = DiagnosticSink({path: text})
    parser = _lark()
    errors: list[UnexpectedInput] = []

    def on_error(e: UnexpectedInput) -> bool:
        # LALR merges states, so a keyword (score, value, count, …) can be lexed as one where only a
        # name fits, such as a record field called `score`: retry such a token as a name.
        if isinstance(e, UnexpectedToken) and e.token.type != "NAME" and _NAME.fullmatch(str(e.token)) \
                and "NAME" in e.interactive_parser.accepts():
            e.interactive_parser.feed_token(Token.new_borrow_pos("NAME", str(e.token), e.token))
            return True
        errors.append(e)
        return len(errors) < 20 and isinstance(e, UnexpectedToken) and e.token.type != "$END"

    try:
        tree = parser.parse(text, on_error=on_error)
    except UnexpectedInput as e:
        if not errors or errors[-1] is not e:
            errors.append(e)
        tree = None
    lines_seen: set[int] = set()
    for e in errors:  # after the first error on a line, the parser's recovery mostly reports echoes of it
        line = getattr(e, "line", 0)
        if line in lines_seen:
            continue
        lines_seen.add(line)
        _report_syntax(sink, e, path, text, parser)
    if errors or tree is None:
        raise ParseFailed(sink.errors)
    try:
        rule_file = _ToAst(path).transform(tree)
    except VisitError as e:  # a literal the grammar admits but the language does not (a bad date, say)
        orig = e.orig_exc
        if isinstance(orig, _LiteralError):
            sink.report("E302", orig.span, orig.message)
            raise ParseFailed(sink.errors) from None
        raise
    rule_file.text = text
    return rule_file


def _report_syntax(sink: DiagnosticSink, e: UnexpectedInput, path: str, text: str, parser: Lark) -> None:
    line = getattr(e, "line", 1) or 1
    column = getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        sink.report("E101", Span(path, line, column, line, column + 1), f"unexpected character {ch!r}")
        return
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = text.splitlines() or [""]
        line = len(lines)
        column = len(lines[-1]) + 1
        expected = _describe_expected(set(getattr(e, "expected", []) or []), parser)
        sink.report("E100", Span(path, line, column, line, column + 1),
                    "the file ends too early" + (f"; expected {', '.join(expected)}" if expected else ""))
        return
    token = e.token
    expected = _describe_expected(set(e.expected or []), parser)
    end = column + max(len(str(token)), 1)
    hint = _hint(str(token), expected)
    shown = ", ".join(expected[:10]) + (f", … ({len(expected) - 10} more)" if len(expected) > 10 else "")
    message = f"unexpected {str(token)!r}; expected {shown}" + hint
    sink.report("E100", Span(path, line, column, line, end), message)


def _hint(token: str, expected: list[str]) -> str:
    if (token.startswith('"') or token in ("kk", "ru", "en")) and "'max'" in expected and "a language (kk, ru, en)" not in expected:
        return " (labels come right after the name, before max, min and the formula)"
    if token == "=":
        return " (in a { } block, write `result = …` after the `let` lines; to compare, write ==)"
    if token == "{" and "'='" in expected:
        return " (a definition is `= expr`, or `{ let ... result = expr }`)"
    if token in ("..", "..=", "..<"):
        return " (band intervals are written [a, b), [a, b], (a, b])"
    return ""


class _LiteralError(Exception):
    def __init__(self, span: Span, message: str):
        super().__init__(message)
        self.span = span
        self.message = message


def _unquote(token: Token) -> str:
    raw = str(token)[1:-1]
    return raw.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8") if "\\" in raw else raw


def _date(token: Token, path: str) -> date:
    try:
        return date.fromisoformat(str(token))
    except ValueError:
        raise _LiteralError(_tspan(token, path), f"{token} is not a valid date") from None


def _tspan(token: Token, path: str) -> Span:
    return Span(path, token.line, token.column, token.end_line or token.line, token.end_column or token.column + 1)


class _Marker:
    """Small tagged values passed between transformer methods."""

    def __init__(self, tag: str, *values):
        self.tag = tag
        self.values = values


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    # ---------------------------------------------------------------- file and header
    def start(self, meta, children):
        header, *items = children
        return ast.RuleFile(self.path, header, items)

    def header(self, meta, children):
        meth, version, *rest = children
        h = ast.Header(methodology=str(meth), version=_unquote(version), span=self._span(meta))
        for item in rest:
            if item is None:
                continue
            if isinstance(item, _Marker):
                if item.tag == "extends":
                    h.extends = item.values[0]
                elif item.tag == "title":
                    h.title = item.values[0]
                elif item.tag == "basis":
                    h.basis = item.values[0]
                elif item.tag == "effective":
                    h.effective_from, h.effective_to = item.values
                elif item.tag == "status":
                    h.status, h.status_span = item.values
                elif item.tag == "subjects":
                    h.subjects, h.subjects_span = item.values
        return h

    def extends(self, meta, children):
        return _Marker("extends", _unquote(children[0]))

    def meta_title(self, meta, children):
        return _Marker("title", children[0])

    def meta_basis(self, meta, children):
        return _Marker("basis", _unquote(children[0]))

    def meta_effective(self, meta, children):
        start = _date(children[0], self.path)
        end = _date(children[1], self.path) if len(children) > 1 and children[1] is not None else None
        return _Marker("effective", start, end)

    def meta_status(self, meta, children):
        return _Marker("status", str(children[0]), self._span(meta))

    def meta_subjects(self, meta, children):
        return _Marker("subjects", [str(c) for c in children], self._span(meta))

    def labels(self, meta, children):
        out: dict[str, str] = {}
        for lang, text in children:
            out[lang] = text
        return out

    def label(self, meta, children):
        lang, text = children
        return (str(lang) if lang is not None else "kk", _unquote(text))

    # ---------------------------------------------------------------- keywords
    def _keyword(self, meta, children):
        return str(children[0])

    kind = unit = agg = lang = round_mode = _keyword

    def unstated(self, meta, children):
        return True

    # ---------------------------------------------------------------- declarations
    def override(self, meta, children):
        return ast.Override(children[0], self._span(meta))

    def remove(self, meta, children):
        return ast.Remove([(str(c), _tspan(c, self.path)) for c in children], self._span(meta))

    def variant(self, meta, children):
        kinds = [str(c) for c in children if isinstance(c, Token)]
        items = [c for c in children if not isinstance(c, Token)]
        return ast.Variant(kinds, items, self._span(meta))

    def _input_like(self, meta, children):
        name, type_spec, *rest = children
        decl = ast.InputDecl(str(name), type_spec, span=self._span(meta))
        for r in rest:
            if isinstance(r, _Marker) and r.tag == "optional":
                decl.optional = True
            elif isinstance(r, _Marker) and r.tag == "default":
                decl.default = r.values[0]
                decl.has_default = True
            elif isinstance(r, dict):
                decl.labels = r
        return decl

    def input_decl(self, meta, children):
        return self._input_like(meta, children)

    def field_decl(self, meta, children):
        decl = self._input_like(meta, children)
        decl.decl_kind = "field"
        return decl

    def opt_optional(self, meta, children):
        return _Marker("optional")

    def opt_default(self, meta, children):
        return _Marker("default", children[0])

    def record_decl(self, meta, children):
        name, labels, *fields = children
        return ast.RecordDecl(str(name), labels or {}, fields, self._span(meta))

    def t_number(self, meta, children):
        unit, bounds = children
        lower, upper = bounds if bounds is not None else (None, None)
        return ast.TypeSpec("number", str(unit), lower, upper, span=self._span(meta))

    def t_bool(self, meta, children):
        return ast.TypeSpec("bool", span=self._span(meta))

    def t_text(self, meta, children):
        return ast.TypeSpec("text", span=self._span(meta))

    def t_date(self, meta, children):
        return ast.TypeSpec("date", span=self._span(meta))

    def t_enum(self, meta, children):
        return ast.TypeSpec("enum", choices=[str(c) for c in children], span=self._span(meta))

    def t_list(self, meta, children):
        return ast.TypeSpec("list", record=str(children[0]), span=self._span(meta))

    def _bound(self, meta, value, open_=False) -> ast.Bound:
        if isinstance(value, ast.Bound):
            value.open = open_
            return value
        return ast.Bound(value=value, open=open_, span=self._span(meta))

    def b_range(self, meta, children):
        return (self._bound(meta, children[0]), self._bound(meta, children[1]))

    def b_ge(self, meta, children):
        return (self._bound(meta, children[0]), None)

    def b_gt(self, meta, children):
        return (self._bound(meta, children[0], True), None)

    def b_le(self, meta, children):
        return (None, self._bound(meta, children[0]))

    def b_lt(self, meta, children):
        return (None, self._bound(meta, children[0], True))

    def bound_ref(self, meta, children):
        return ast.Bound(ref=str(children[0]), span=self._span(meta))

    def param_decl(self, meta, children):
        name, unit, value, unstated, labels = children
        return ast.ParamDecl(str(name), str(unit) if unit is not None else "number", value,
                             unstated is not None, labels or {}, self._span(meta))

    def definition(self, meta, children):
        kind, name, labels, *rest = children
        opts = [r for r in rest if isinstance(r, _Marker)]
        body = next(r for r in rest if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], list))
        rounding = next((r for r in rest if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], int)), None)
        d = ast.Definition(str(kind), str(name), labels or {}, "", None, None, body[0], body[1], rounding,
                           self._span(meta))
        for o in opts:
            if o.tag == "max":
                d.maximum = o.values[0]
            elif o.tag == "min":
                d.minimum = o.values[0]
            elif o.tag == "unit":
                d.unit = o.values[0]
        return d

    def opt_max(self, meta, children):
        return _Marker("max", children[0])

    def opt_min(self, meta, children):
        return _Marker("min", children[0])

    def opt_unit(self, meta, children):
        return _Marker("unit", str(children[0]))

    def body_expr(self, meta, children):
        return ([], children[0])

    def body_block(self, meta, children):
        return (list(children[:-1]), children[-1])

    def let_stmt(self, meta, children):
        return ast.LetStmt(str(children[0]), children[1], self._span(meta))

    def rounding(self, meta, children):
        return (int(children[0]), str(children[1]))

    def helper_decl(self, meta, children):
        name, *params, expr = children
        return ast.HelperDecl(str(name), [str(p) for p in params], expr, self._span(meta))

    def constraint_decl(self, meta, children):
        name, labels, expr = children
        return ast.ConstraintDecl(str(name), labels or {}, expr, self._span(meta))

    def table_decl(self, meta, children):
        name, param, ptype, labels, *bands = children
        return ast.TableDecl(str(name), str(param), ptype, labels or {}, bands, self._span(meta))

    def band(self, meta, children):
        return ast.Band(children[0], children[1], self._span(meta))

    def grade_decl(self, meta, children):
        name, *bands = children
        return ast.GradeDecl(str(name), bands, self._span(meta))

    def grade_band(self, meta, children):
        name, labels, interval = children
        return ast.GradeBand(str(name), labels or {}, interval, self._span(meta))

    def interval(self, meta, children):
        lo_closed, lo, hi, hi_closed = children
        lo = None if lo == "-inf" else lo
        hi = None if hi == "+inf" else hi
        if lo == "+inf" or hi == "-inf":
            raise _LiteralError(self._span(meta), "an interval runs from -inf upwards and to inf downwards")
        return ast.Interval(lo, lo_closed and lo is not None, hi, hi_closed and hi is not None, self._span(meta))

    def closed(self, meta, children):
        return True

    def open(self, meta, children):
        return False

    def inf(self, meta, children):
        return "+inf"

    def neg_inf(self, meta, children):
        return "-inf"

    # ---------------------------------------------------------------- tests
    def test_decl(self, meta, children):
        name, kind, *stmts = children
        givens, expects = [], []
        for s in stmts:
            if s.tag == "given":
                givens.extend(s.values)
            else:
                expects.extend(s.values)
        return ast.TestDecl(_unquote(name), str(kind) if kind is not None else None, givens, expects,
                            self._span(meta))

    def test_given(self, meta, children):
        return _Marker("given", *children)

    def test_expect(self, meta, children):
        return _Marker("expect", *children)

    def given(self, meta, children):
        return ast.Given(str(children[0]), children[1], self._span(meta))

    def expect_value(self, meta, children):
        name, value, tol = children
        return ast.Expectation("value", str(name), value, Decimal(str(tol)) if tol is not None else None,
                               span=self._span(meta))

    def expect_grade(self, meta, children):
        return ast.Expectation("grade", str(children[0]), str(children[1]), span=self._span(meta))

    def expect_error(self, meta, children):
        text = _unquote(children[0]) if children and children[0] is not None else ""
        return ast.Expectation("error", text=text, span=self._span(meta))

    def lit_text(self, meta, children):
        return _unquote(children[0])

    def lit_true(self, meta, children):
        return True

    def lit_false(self, meta, children):
        return False

    def lit_date(self, meta, children):
        return _date(children[0], self.path)

    def lit_list(self, meta, children):
        return [c for c in children if c is not None] if children != [None] else []

    def lit_record(self, meta, children):
        return dict(c for c in children if c is not None)

    def record_entry(self, meta, children):
        return (str(children[0]), children[1])

    def signed_number(self, meta, children):
        return Decimal(str(children[0]))

    def negative_number(self, meta, children):
        return -Decimal(str(children[0]))

    # ---------------------------------------------------------------- expressions
    def number(self, meta, children):
        return ast.Num(Decimal(str(children[0])), str(children[0]), self._span(meta))

    def true_(self, meta, children):
        return ast.BoolLit(True, self._span(meta))

    def false_(self, meta, children):
        return ast.BoolLit(False, self._span(meta))

    def ref(self, meta, children):
        return ast.Ref(str(children[0]), self._span(meta))

    def field(self, meta, children):
        return ast.FieldRef(str(children[0]), str(children[1]), self._span(meta))

    def _bin(op):  # noqa: N805 - a small factory used in the class body
        def method(self, meta, children):
            return ast.Binary(op, children[0], children[-1], self._span(meta))

        return method

    add = _bin("+")
    sub = _bin("-")
    mul = _bin("*")
    div = _bin("/")
    and_ = _bin("and")
    or_ = _bin("or")

    def compare(self, meta, children):
        return ast.Binary(str(children[1]), children[0], children[2], self._span(meta))

    def neg(self, meta, children):
        operand = children[0]
        if isinstance(operand, ast.Num):  # fold -0.5 into a literal
            return ast.Num(-operand.value, "-" + operand.text, self._span(meta))
        return ast.Unary("-", operand, self._span(meta))

    def not_(self, meta, children):
        return ast.Unary("not", children[0], self._span(meta))

    def call(self, meta, children):
        func, *args = children
        positional, named = [], {}
        for a in args:
            if a is None:
                continue
            if isinstance(a, _Marker) and a.tag == "named":
                named[a.values[0]] = a.values[1]
            else:
                positional.append(a)
        return ast.Call(str(func), positional, named, self._span(meta))

    def named_arg(self, meta, children):
        return _Marker("named", str(children[0]), children[1])

    def aggregate(self, meta, children):
        func, var, source, where, body = children
        return ast.Aggregate(str(func), str(var), source, where, body, self._span(meta))

    def weighted(self, meta, children):
        return ast.Weighted(list(children), self._span(meta))

    def weight_term(self, meta, children):
        return ast.WeightTerm(Decimal(str(children[0])), str(children[0]), children[1], self._span(meta))

    def round_expr(self, meta, children):
        return ast.Round(children[0], int(children[1]), str(children[2]), self._span(meta))

    def when_expr(self, meta, children):
        *branches, otherwise = children
        return ast.When(list(branches), otherwise, self._span(meta))

    def when_branch(self, meta, children):
        return (children[0], children[1])
