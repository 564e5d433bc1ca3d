"""Validation of request inputs against their declared types and bounds: every problem is collected.

``InputCheck`` is the general path (any type, any value, a clear message). Generated evaluation
functions check exact decimals inline and fall back to ``InputCheck.value_from`` only for values that
need conversion or fail a check, so the common case costs a few comparisons per input.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from . import ast
from .decimals import NotADecimal, format_decimal, to_decimal
from .errors import FieldIssue
from .model import KindScope, bound_value

NATURAL_BOUNDS = {"count": (Decimal(0), None), "percent": (Decimal(0), Decimal(100)),
                  "share": (Decimal(0), Decimal(1)), "points": (Decimal(0), None)}

MISSING = object()


class InputCheck:
    """Validation of one input (or record field), prepared once per scope."""

    def __init__(self, scope: KindScope, decl: ast.InputDecl, records: dict[str, ast.RecordDecl]):
        spec = decl.type
        self.name = decl.name
        self.kind = spec.kind
        self.unit = spec.unit
        self.optional = decl.optional
        self.has_default = decl.has_default
        self.default = decl.default
        self.choices = spec.choices
        self.lo = bound_value(scope, spec.lower)
        self.hi = bound_value(scope, spec.upper)
        self.lo_open = bool(spec.lower and spec.lower.open)
        self.hi_open = bool(spec.upper and spec.upper.open)
        self.lo_ref = spec.lower.ref if spec.lower and spec.lower.ref in scope.inputs else None
        self.hi_ref = spec.upper.ref if spec.upper and spec.upper.ref in scope.inputs else None
        if spec.kind == "number":
            natural = NATURAL_BOUNDS.get(spec.unit, (None, None))
            if self.lo is None and self.lo_ref is None:
                self.lo = natural[0]
            if self.hi is None and self.hi_ref is None:
                self.hi = natural[1]
        self.fields = [InputCheck(scope, f, records) for f in records[spec.record].fields] if spec.kind == "list" and spec.record in records else []
        # the default, converted once (a bad default is a compile error, E302)
        self.default_value = self.coerce(self.default, self.name, []) if self.has_default else None

    def expected(self) -> str:
        if self.kind == "number":
            what = {"count": "a whole number", "percent": "a percentage", "share": "a share",
                    "points": "points"}.get(self.unit, "a decimal number")
            lo = "" if self.lo is None else (f"{'>' if self.lo_open else '>='} {format_decimal(self.lo)}")
            hi = "" if self.hi is None else (f"{'<' if self.hi_open else '<='} {format_decimal(self.hi)}")
            bounds = " and ".join(b for b in (lo, hi) if b)
            return what + (f" {bounds}" if bounds else "")
        return {"bool": "true or false", "text": "a text", "date": "a date YYYY-MM-DD",
                "enum": "one of " + ", ".join(self.choices), "list": "a list of records"}.get(self.kind, self.kind)

    def coerce(self, value: Any, path: str, issues: list[FieldIssue]) -> Any:  # noqa: C901 - one case per type
        if self.kind == "number":
            try:
                d = to_decimal(value)
            except NotADecimal as e:
                issues.append(FieldIssue(path, f"{e}; expected {self.expected()}"))
                return None
            if self.unit == "count" and d != d.to_integral_value():
                issues.append(FieldIssue(path, f"{format_decimal(d)} is not a whole number; expected {self.expected()}"))
            elif (self.lo is not None and (d < self.lo or (self.lo_open and d == self.lo))) or \
                 (self.hi is not None and (d > self.hi or (self.hi_open and d == self.hi))):
                issues.append(FieldIssue(path, f"{format_decimal(d)} is out of range; expected {self.expected()}"))
            return d
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            issues.append(FieldIssue(path, f"expected true or false, got {value!r}"))
            return None
        if self.kind in ("text", "enum"):
            if not isinstance(value, str):
                issues.append(FieldIssue(path, f"expected {self.expected()}, got {value!r}"))
                return None
            if self.kind == "enum" and value not in self.choices:
                issues.append(FieldIssue(path, f"{value!r} is not allowed; expected {self.expected()}"))
            return value
        if self.kind == "date":
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value))
            except ValueError:
                issues.append(FieldIssue(path, f"{value!r} is not a date; expected YYYY-MM-DD"))
                return None
        if self.kind == "list":
            if not isinstance(value, list):
                issues.append(FieldIssue(path, f"expected a list of records, got {type(value).__name__}"))
                return None
            out = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    issues.append(FieldIssue(f"{path}[{i}]", "expected a record {field: value, …}"))
                    continue
                rec = {}
                known = {f.name for f in self.fields}
                for k in item:
                    if k not in known:
                        issues.append(FieldIssue(f"{path}[{i}].{k}", f"unknown field; expected {', '.join(sorted(known))}"))
                for f in self.fields:
                    rec[f.name] = f.value_from(item, f"{path}[{i}].{f.name}", issues)
                out.append(rec)
            return out
        return value

    def value_from(self, mapping: dict, path: str, issues: list[FieldIssue]) -> Any:
        raw = mapping.get(self.name, MISSING)
        if raw is MISSING or raw is None:
            if self.has_default:
                return self.coerce(self.default, path, issues)
            if self.optional:
                return None
            issues.append(FieldIssue(path, f"missing; expected {self.expected()}"))
            return None
        return self.coerce(raw, path, issues)

    def peek(self, mapping: dict) -> Any:
        """The input's value as validation reads it, for messages."""
        return self.value_from(mapping, self.name, [])
