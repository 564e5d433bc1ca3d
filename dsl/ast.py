"""The syntax tree of a rule file: plain dataclasses, each node with its source span."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Union

from .diagnostics import NO_SPAN, Span

Labels = dict[str, str]  # language code -> text


# ---------------------------------------------------------------- expressions


@dataclass
class Num:
    value: Decimal
    text: str
    span: Span = NO_SPAN


@dataclass
class BoolLit:
    value: bool
    span: Span = NO_SPAN


@dataclass
class EnumLit:
    """A choice of an enumeration, compared with an enum input: `group == b_category`."""

    value: str
    span: Span = NO_SPAN


@dataclass
class Ref:
    name: str
    span: Span = NO_SPAN


@dataclass
class FieldRef:
    var: str
    field: str
    span: Span = NO_SPAN


@dataclass
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    span: Span = NO_SPAN


@dataclass
class Binary:
    op: str  # + - * / and or < <= > >= == !=
    left: "Expr"
    right: "Expr"
    span: Span = NO_SPAN


@dataclass
class Call:
    func: str
    args: list["Expr"]
    named: dict[str, "Expr"] = field(default_factory=dict)
    span: Span = NO_SPAN


@dataclass
class When:
    branches: list[tuple["Expr", "Expr"]]
    otherwise: "Expr"
    span: Span = NO_SPAN


@dataclass
class Aggregate:
    func: str  # sum mean count min max
    var: str
    source: "Expr"
    where: "Expr | None"
    body: "Expr | None"
    span: Span = NO_SPAN


@dataclass
class WeightTerm:
    weight: Decimal
    text: str
    expr: "Expr"
    span: Span = NO_SPAN


@dataclass
class Weighted:
    terms: list[WeightTerm]
    span: Span = NO_SPAN


@dataclass
class Round:
    expr: "Expr"
    places: int
    mode: str
    span: Span = NO_SPAN


Expr = Union[Num, BoolLit, EnumLit, Ref, FieldRef, Unary, Binary, Call, When, Aggregate, Weighted, Round]


# ---------------------------------------------------------------- declarations


@dataclass
class Bound:
    value: Decimal | None = None  # a number, or
    ref: str | None = None  # the name of a param or input
    open: bool = False  # strict (> or <)
    span: Span = NO_SPAN


@dataclass
class TypeSpec:
    kind: str  # number bool text date enum list
    unit: str = ""  # for numbers: count decimal percent share points number
    lower: Bound | None = None
    upper: Bound | None = None
    choices: list[str] = field(default_factory=list)
    record: str = ""
    span: Span = NO_SPAN


@dataclass
class InputDecl:
    name: str
    type: TypeSpec
    optional: bool = False
    default: Any = None
    has_default: bool = False
    labels: Labels = field(default_factory=dict)
    span: Span = NO_SPAN
    decl_kind: str = "input"


@dataclass
class RecordDecl:
    name: str
    labels: Labels
    fields: list[InputDecl]
    span: Span = NO_SPAN
    decl_kind: str = "record"


@dataclass
class ParamDecl:
    name: str
    unit: str
    value: Decimal
    unstated: bool
    labels: Labels = field(default_factory=dict)
    span: Span = NO_SPAN
    decl_kind: str = "param"


@dataclass
class LetStmt:
    name: str
    expr: Expr
    span: Span = NO_SPAN


@dataclass
class Definition:
    kind: str  # indicator criterion direction score bonus penalty coefficient value
    name: str
    labels: Labels
    unit: str
    minimum: Decimal | None
    maximum: Decimal | None
    lets: list[LetStmt]
    expr: Expr
    rounding: tuple[int, str] | None
    span: Span = NO_SPAN
    decl_kind: str = "definition"


@dataclass
class HelperDecl:
    name: str
    params: list[str]
    expr: Expr
    span: Span = NO_SPAN
    decl_kind: str = "helper"


@dataclass
class ConstraintDecl:
    name: str
    labels: Labels
    expr: Expr
    span: Span = NO_SPAN
    decl_kind: str = "constraint"


@dataclass
class Interval:
    lo: Decimal | None  # None: minus infinity
    lo_closed: bool
    hi: Decimal | None  # None: plus infinity
    hi_closed: bool
    span: Span = NO_SPAN

    def contains(self, x: Decimal) -> bool:
        if self.lo is not None and (x < self.lo or (x == self.lo and not self.lo_closed)):
            return False
        if self.hi is not None and (x > self.hi or (x == self.hi and not self.hi_closed)):
            return False
        return True

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else str(self.lo)
        hi = "inf" if self.hi is None else str(self.hi)
        return f"{'[' if self.lo_closed else '('}{lo}, {hi}{']' if self.hi_closed else ')'}"


@dataclass
class Band:
    interval: Interval
    expr: Expr
    span: Span = NO_SPAN


@dataclass
class TableDecl:
    name: str
    param: str
    param_type: TypeSpec
    labels: Labels
    bands: list[Band]
    span: Span = NO_SPAN
    decl_kind: str = "table"


@dataclass
class GradeBand:
    name: str
    labels: Labels
    interval: Interval
    span: Span = NO_SPAN


@dataclass
class GradeDecl:
    name: str
    bands: list[GradeBand]
    span: Span = NO_SPAN
    decl_kind: str = "grade"


@dataclass
class Override:
    item: Any
    span: Span = NO_SPAN


@dataclass
class Remove:
    names: list[tuple[str, Span]]
    span: Span = NO_SPAN


@dataclass
class Variant:
    kinds: list[str]
    items: list[Any]
    span: Span = NO_SPAN


@dataclass
class Given:
    name: str
    value: Any
    span: Span = NO_SPAN


@dataclass
class Expectation:
    kind: str  # value grade error
    name: str = ""
    value: Any = None
    tolerance: Decimal | None = None
    text: str = ""
    span: Span = NO_SPAN


@dataclass
class TestDecl:
    name: str
    subject_kind: str | None
    givens: list[Given]
    expects: list[Expectation]
    span: Span = NO_SPAN


@dataclass
class Header:
    methodology: str
    version: str
    extends: str | None = None
    title: Labels = field(default_factory=dict)
    basis: str = ""
    effective_from: date | None = None
    effective_to: date | None = None
    status: str = ""
    subjects: list[str] = field(default_factory=list)
    span: Span = NO_SPAN
    status_span: Span = NO_SPAN
    subjects_span: Span = NO_SPAN


@dataclass
class RuleFile:
    path: str
    header: Header
    items: list[Any]
    text: str = ""
