"""The checked model of one methodology version: what the compiler passes build and the evaluator runs.

A version has one scope per subject kind (``central``, ``local``, ``servant``): the common
declarations, with the version's ``for KIND { }`` variants applied, and for an amendment the base
version's scopes with its overrides and removals applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import ast
from .diagnostics import Span

SCORING_KINDS = ("indicator", "criterion", "direction", "score", "bonus", "penalty")
DEFAULT_UNITS = {k: "points" for k in SCORING_KINDS} | {"coefficient": "number", "value": "number"}
STATUSES = ("draft", "proposed", "in_force", "repealed")
BUILTINS = {"min": (2, None), "max": (2, None), "clamp": (3, 3), "abs": (1, 1), "ratio": (2, 2)}


def namespace(item) -> str:
    """Grades and records have their own namespaces; everything else shares one."""
    if isinstance(item, ast.GradeDecl):
        return "grade"
    if isinstance(item, ast.RecordDecl):
        return "record"
    return "value"


def item_key(item) -> tuple[str, str]:
    return (namespace(item), item.name)


@dataclass
class Body:
    """A definition's formula after helpers are expanded: ``let`` lines, then the result."""

    lets: list[ast.LetStmt]
    expr: ast.Expr


@dataclass
class KindScope:
    """Everything one subject kind sees in one version, resolved and checked."""

    kind: str
    inputs: dict[str, ast.InputDecl] = field(default_factory=dict)
    params: dict[str, ast.ParamDecl] = field(default_factory=dict)
    records: dict[str, ast.RecordDecl] = field(default_factory=dict)
    definitions: dict[str, ast.Definition] = field(default_factory=dict)
    tables: dict[str, ast.TableDecl] = field(default_factory=dict)
    grades: dict[str, ast.GradeDecl] = field(default_factory=dict)
    helpers: dict[str, ast.HelperDecl] = field(default_factory=dict)
    constraints: dict[str, ast.ConstraintDecl] = field(default_factory=dict)
    # filled by the passes
    bodies: dict[str, Body] = field(default_factory=dict)
    constraint_exprs: dict[str, ast.Expr] = field(default_factory=dict)
    deps: dict[str, set[str]] = field(default_factory=dict)  # definition/constraint -> global names used
    order: list[str] = field(default_factory=list)  # definitions in evaluation order
    types: dict[str, tuple] = field(default_factory=dict)  # name -> type (see types.py)
    ranges: dict[str, Any] = field(default_factory=dict)  # name -> ranges.Range
    facts: set[tuple[str, str]] = field(default_factory=set)  # (a, b): a <= b, from bounds and constraints

    def unit_of(self, name: str) -> str:
        d = self.definitions[name]
        return d.unit or DEFAULT_UNITS[d.kind]

    def lookup(self, name: str):
        for table in (self.inputs, self.params, self.definitions, self.tables, self.helpers, self.constraints):
            if name in table:
                return table[name]
        return None

    def global_names(self) -> set[str]:
        return set(self.inputs) | set(self.params) | set(self.definitions)


@dataclass
class VersionModel:
    methodology: str
    version: str
    path: str
    extends: str | None
    title: dict[str, str]
    basis: str
    effective_from: date | None
    effective_to: date | None
    status: str
    subjects: list[str]
    content_hash: str
    source_text: str
    header_span: Span
    scopes: dict[str, KindScope]
    tests: list[ast.TestDecl]
    # the declarations as merged (common, per-kind overlays): an amendment of this version starts here
    common: dict[tuple[str, str], Any]
    overlays: dict[str, dict[tuple[str, str], Any]]
    unstated_params: list[str] = field(default_factory=list)
    pass_timings: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.methodology}@{self.version}"


def merge_scope(kind: str, common: dict, overlay: dict) -> KindScope:
    scope = KindScope(kind)
    merged = dict(common)
    for key, item in overlay.items():
        if item is None:
            merged.pop(key, None)
        else:
            merged[key] = item
    tables = {
        ast.InputDecl: scope.inputs, ast.ParamDecl: scope.params, ast.RecordDecl: scope.records,
        ast.Definition: scope.definitions, ast.TableDecl: scope.tables, ast.GradeDecl: scope.grades,
        ast.HelperDecl: scope.helpers, ast.ConstraintDecl: scope.constraints,
    }
    for (_, name), item in merged.items():
        tables[type(item)][name] = item
    return scope


def clone_expr(e: ast.Expr) -> ast.Expr:
    return copy.deepcopy(e)


def bound_value(scope: KindScope, bound: ast.Bound | None) -> Decimal | None:
    """A bound's number, following a reference to a param (inputs give no fixed number)."""
    if bound is None:
        return None
    if bound.value is not None:
        return bound.value
    if bound.ref in scope.params:
        return scope.params[bound.ref].value
    return None
