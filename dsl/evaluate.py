"""Evaluate a compiled methodology version for one subject, exactly, with an optional explanation.

Per request: the plan (which definitions to compute, which the caller supplied) is looked up in a
cache of generated functions; the inputs that plan needs are validated (all problems at once); the
function runs under the exact decimal context; grades are looked up; an explanation is built from
the traced run when asked for.
"""

from __future__ import annotations

import decimal
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import ast
from .codegen import EvaluationError, Plan, build
from .decimals import CONTEXT, NotADecimal, format_decimal, to_decimal
from .errors import EvaluationFailed, FieldIssue, InputError
from .model import SCORING_KINDS, KindScope, VersionModel, bound_value
from .printer import format_expr, walk
from .ranges import UNBOUNDED

LANGUAGES = ("kk", "ru", "en")


@dataclass
class EvalRequest:
    subject_id: str
    subject_kind: str
    inputs: dict[str, Any]
    only: list[str] | None = None
    explain: bool = False
    language: str = "kk"


@dataclass
class ExplanationItem:
    name: str
    kind: str
    label: str
    formula: str
    substituted: str
    value: Decimal | None
    detail: str
    file: str
    line: int
    supplied: bool = False
    grade: str = ""

    def to_json(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "label": self.label, "formula": self.formula,
            "substituted": self.substituted, "value": None if self.value is None else format_decimal(self.value),
            "detail": self.detail, "file": self.file, "line": self.line, "supplied": self.supplied,
            **({"grade": self.grade} if self.grade else {}),
        }


@dataclass
class EvalResult:
    methodology: str
    version: str
    content_hash: str
    subject_id: str
    subject_kind: str
    values: dict[str, Decimal]
    grades: dict[str, str]
    supplied: list[str]
    explanation: list[ExplanationItem] | None = None

    def to_json(self) -> dict:
        out = {
            "methodology": self.methodology,
            "version": self.version,
            "content_hash": self.content_hash,
            "subject": {"id": self.subject_id, "kind": self.subject_kind},
            "values": {k: format_decimal(v) for k, v in self.values.items()},
            "grades": dict(self.grades),
            "supplied": list(self.supplied),
        }
        if self.explanation is not None:
            out["explanation"] = [e.to_json() for e in self.explanation]
        return out


def label_of(labels: dict[str, str], language: str, fallback: str) -> str:
    for lang in (language, "kk", "en", "ru"):
        if labels.get(lang):
            return labels[lang]
    return fallback


class _Tracer:
    def __init__(self):
        self.current = ""
        self.branches: dict[str, int] = {}
        self.bands: dict[str, list[tuple[str, int]]] = {}
        self.lets: dict[str, dict[str, Any]] = {}
        self.unrounded_values: dict[str, Decimal] = {}

    def enter(self, name):
        self.current = name

    def branch(self, site, index, value):
        self.branches[site] = index
        return value

    def band(self, table, index, value):
        self.bands.setdefault(self.current, []).append((table, index))
        return value

    def let(self, definition, name, value):
        self.lets.setdefault(definition, {})[name] = value

    def unrounded(self, name, value):
        self.unrounded_values[name] = value


_MISSING = object()


class _InputCheck:
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
            natural = {"count": (Decimal(0), None), "percent": (Decimal(0), Decimal(100)),
                       "share": (Decimal(0), Decimal(1)), "points": (Decimal(0), None)}.get(spec.unit, (None, None))
            if self.lo is None and self.lo_ref is None:
                self.lo = natural[0]
            if self.hi is None and self.hi_ref is None:
                self.hi = natural[1]
        self.fields = [_InputCheck(scope, f, records) for f in records[spec.record].fields] if spec.kind == "list" and spec.record in records else []

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
        raw = mapping.get(self.name, _MISSING)
        if raw is _MISSING or raw is None:
            if self.has_default:
                return self.coerce(self.default, path, issues)
            if self.optional:
                return None
            issues.append(FieldIssue(path, f"missing; expected {self.expected()}"))
            return None
        return self.coerce(raw, path, issues)


class Evaluator:
    """Evaluates one compiled version. Thread-safe; generated functions are cached per plan."""

    MAX_PLANS = 256

    def __init__(self, model: VersionModel):
        self.model = model
        self._plans: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._checks: dict[str, dict[str, _InputCheck]] = {}
        self._constraints: dict[str, dict[str, Any]] = {}
        self._when_sites: dict[str, dict[str, ast.When]] = {}
        for kind, scope in model.scopes.items():
            self._checks[kind] = {n: _InputCheck(scope, d, scope.records) for n, d in scope.inputs.items()}
            self._constraints[kind] = {n: self._constraint_fn(scope, n) for n in scope.constraints}
            sites = {}
            for name, body in scope.bodies.items():
                for e in [body.expr] + [l.expr for l in body.lets]:
                    for node in walk(e):
                        if isinstance(node, ast.When):
                            sites[f"{name}@{node.span.line}:{node.span.column}"] = node
            self._when_sites[kind] = sites

    # ------------------------------------------------------------ plans
    def _constraint_fn(self, scope: KindScope, name: str):
        from .codegen import _Gen

        g = _Gen(scope, traced=False)
        g.table_sources = []
        deps = scope.deps[name]
        local = {d: f"inp[{d!r}]" for d in deps if d in scope.inputs}
        for d in deps:
            if d in scope.params:
                g.namespace[f"v_{d}"] = scope.params[d].value
        source = "\n".join(g.table_sources + ["def check(inp):", f"    return {g.expr(scope.constraint_exprs[name], local)}"])
        namespace = g.namespace
        exec(compile(source, f"<bagalau constraint {name}>", "exec"), namespace)  # noqa: S102 - from the checked model
        return namespace["check"]

    def plan(self, kind: str, targets: tuple[str, ...] | None, supplied: frozenset[str], traced: bool):
        key = (kind, targets, supplied, traced)
        with self._lock:
            hit = self._plans.get(key)
            if hit is not None:
                self._plans.move_to_end(key)
                return hit
        scope = self.model.scopes[kind]
        compute, inputs = self.needed(scope, targets, supplied)
        fn = build(scope, Plan(tuple(compute), supplied, traced))
        entry = (fn, tuple(compute), frozenset(inputs))
        with self._lock:
            self._plans[key] = entry
            while len(self._plans) > self.MAX_PLANS:
                self._plans.popitem(last=False)
        return entry

    @staticmethod
    def needed(scope: KindScope, targets, supplied) -> tuple[list[str], set[str]]:
        """Definitions to compute (in order) and inputs required, for the targets."""
        compute: set[str] = set()
        inputs: set[str] = set()
        stack = list(targets if targets is not None else scope.definitions)
        while stack:
            n = stack.pop()
            if n in supplied:
                continue
            if n in scope.definitions:
                if n not in compute:
                    compute.add(n)
                    stack.extend(scope.deps[n])
            elif n in scope.inputs:
                inputs.add(n)
        return [n for n in scope.order if n in compute], inputs

    # ------------------------------------------------------------ evaluation
    def evaluate(self, req: EvalRequest) -> EvalResult:
        model = self.model
        issues: list[FieldIssue] = []
        scope = model.scopes.get(req.subject_kind)
        if scope is None:
            raise InputError([FieldIssue("subject.kind", f"{req.subject_kind!r} is not a subject of "
                                         f"{model.key}; expected one of {', '.join(model.subjects)}")])
        if req.language not in LANGUAGES:
            issues.append(FieldIssue("language", f"{req.language!r} is not supported; expected kk, ru or en"))
        if not isinstance(req.inputs, dict):
            raise InputError([FieldIssue("inputs", "expected an object of name: value")])
        supplied = frozenset(n for n in req.inputs if n in scope.definitions)
        for n in req.inputs:
            if n not in scope.inputs and n not in scope.definitions:
                issues.append(FieldIssue(n, f"unknown input for {model.key} ({req.subject_kind})"))
        targets = None
        if req.only:
            targets = tuple(dict.fromkeys(req.only))
            for n in targets:
                if n not in scope.definitions:
                    issues.append(FieldIssue("only", f"{n} is not a value of {model.key} ({req.subject_kind})"))
            targets = tuple(n for n in targets if n in scope.definitions)
        fn, compute, needed_inputs = self.plan(req.subject_kind, targets, supplied, req.explain)
        values: dict[str, Any] = {}
        checks = self._checks[req.subject_kind]
        for n in needed_inputs:
            values[n] = checks[n].value_from(req.inputs, n, issues)
        for n in needed_inputs:  # bounds that name another input: trained <= due
            check = checks[n]
            v = values.get(n)
            if not isinstance(v, Decimal):
                continue
            for ref, op in ((check.hi_ref, "<="), (check.lo_ref, ">=")):
                other = values.get(ref) if ref else None
                if isinstance(other, Decimal) and ((op == "<=" and (v > other or (check.hi_open and v == other))) or
                                                   (op == ">=" and (v < other or (check.lo_open and v == other)))):
                    issues.append(FieldIssue(n, f"{format_decimal(v)} must be {op} {ref} ({format_decimal(other)})"))
        for n in supplied:
            values[n] = self._supplied_value(scope, n, req.inputs[n], issues)
        if not issues:
            for cname, cfn in self._constraints[req.subject_kind].items():
                deps = [d for d in scope.deps[cname] if d in scope.inputs]
                if deps and all(d in needed_inputs for d in deps):
                    try:
                        with decimal.localcontext(CONTEXT):
                            ok = cfn(values)
                    except (TypeError, ArithmeticError):
                        continue
                    if not ok:
                        con = scope.constraints[cname]
                        issues.append(FieldIssue(", ".join(sorted(deps)), f"{label_of(con.labels, req.language, cname)}"
                                                 f" ({format_expr(con.expr)})"))
        if issues:
            raise InputError(issues)
        tracer = _Tracer() if req.explain else None
        try:
            with decimal.localcontext(CONTEXT):
                computed = fn(values, tracer) if req.explain else fn(values)
        except (EvaluationError, ArithmeticError, TypeError) as e:
            raise EvaluationFailed(self._failure_message(req, values, supplied, targets, e)) from None
        out_names = list(targets) if targets is not None else [n for n in scope.order]
        all_values = {**{n: values[n] for n in supplied}, **computed}
        result_values = {n: all_values[n] for n in out_names if n in all_values}
        grades = {}
        for n, v in result_values.items():
            g = scope.grades.get(n)
            if g is not None:
                band = next((b for b in g.bands if b.interval.contains(v)), None)
                if band is not None:
                    grades[n] = band.name
        result = EvalResult(model.methodology, model.version, model.content_hash, req.subject_id, req.subject_kind,
                            result_values, grades, sorted(supplied))
        if req.explain:
            result.explanation = self._explain(scope, req, values, all_values, compute, supplied, tracer, grades)
        return result

    def _supplied_value(self, scope: KindScope, name: str, raw: Any, issues: list[FieldIssue]) -> Decimal | None:
        d = scope.definitions[name]
        try:
            v = to_decimal(raw)
        except NotADecimal as e:
            issues.append(FieldIssue(name, f"{e}; expected the value of {d.kind} {name}"))
            return None
        lo, hi = self.supplied_range(scope, name)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            issues.append(FieldIssue(name, f"supplied {format_decimal(v)} is outside the range of {d.kind} {name}: "
                                     f"[{'-inf' if lo is None else format_decimal(lo)}, {'inf' if hi is None else format_decimal(hi)}]"))
        return v

    @staticmethod
    def supplied_range(scope: KindScope, name: str) -> tuple[Decimal | None, Decimal | None]:
        """The range a supplied value must lie in: the declared min/max, else what the formula can give."""
        d = scope.definitions[name]
        r = scope.ranges.get(name, UNBOUNDED)
        lo = d.minimum if d.minimum is not None else (Decimal(0) if d.kind in SCORING_KINDS and r.lo is not None and r.lo >= 0 else r.lo)
        hi = d.maximum if d.maximum is not None else r.hi
        return lo, hi

    def _failure_message(self, req, values, supplied, targets, error) -> str:
        tracer = _Tracer()
        fn, _, _ = self.plan(req.subject_kind, targets, supplied, True)
        try:
            with decimal.localcontext(CONTEXT):
                fn(values, tracer)
        except Exception:  # noqa: BLE001 - the traced run only tells where it stopped
            pass
        where = tracer.current or "a value"
        reason = str(error) if isinstance(error, EvaluationError) else {
            decimal.DivisionByZero: "division by zero", decimal.InvalidOperation: "an invalid operation",
        }.get(type(error), type(error).__name__)
        return f"could not compute {where}: {reason}"

    # ------------------------------------------------------------ explanation
    def _explain(self, scope, req, inputs, all_values, compute, supplied, tracer, grades) -> list[ExplanationItem]:
        items = []
        lang = req.language
        names = [n for n in scope.order if n in supplied or n in compute]
        for n in names:
            d = scope.definitions[n]
            label = label_of(d.labels, lang, n)
            grade = ""
            if n in scope.grades and n in all_values:
                band = next((b for b in scope.grades[n].bands if b.interval.contains(all_values[n])), None)
                if band is not None:
                    grade = label_of(band.labels, lang, band.name)
            if n in supplied:
                lo, hi = self.supplied_range(scope, n)
                rng = f"[{'-inf' if lo is None else format_decimal(lo)}, {'inf' if hi is None else format_decimal(hi)}]"
                items.append(ExplanationItem(n, d.kind, label, self._formula(scope, n), "", all_values[n],
                                             f"supplied by the caller; checked against {rng}; formula not evaluated",
                                             d.span.file, d.span.line, True, grade))
                continue
            body = scope.bodies[n]
            env = dict(inputs)
            env.update({k: v for k, v in all_values.items()})
            lets = tracer.lets.get(n, {})
            env.update(lets)
            parts = [f"{let.name} = {format_expr(let.expr, env)} = {format_decimal(lets[let.name])}"
                     for let in body.lets if let.name in lets]
            parts.append(format_expr(body.expr, env))
            details = []
            for site, node in self._when_sites[scope.kind].items():
                if site.startswith(n + "@") and site in tracer.branches:
                    i = tracer.branches[site]
                    if i < len(node.branches):
                        cond, value = node.branches[i]
                        details.append(f"branch {i + 1} taken: {format_expr(cond, env)} (from {format_expr(cond)}) -> {format_expr(value)}")
                    else:
                        details.append(f"else branch taken (no condition held) -> {format_expr(node.otherwise)}")
            for table, idx in tracer.bands.get(n, []):
                band = scope.tables[table].bands[idx]
                details.append(f"table {table}: band {band.interval} -> {format_expr(band.expr)}")
            if d.rounding and n in tracer.unrounded_values:
                details.append(f"{format_decimal(tracer.unrounded_values[n])} rounded to {d.rounding[0]} "
                               f"decimal place{'s' if d.rounding[0] != 1 else ''}, {d.rounding[1]}")
            items.append(ExplanationItem(n, d.kind, label, self._formula(scope, n), "; ".join(parts), all_values.get(n),
                                         "; ".join(details), d.span.file, d.span.line, False, grade))
        return items

    @staticmethod
    def _formula(scope: KindScope, name: str) -> str:
        d = scope.definitions[name]
        body = scope.bodies[name]
        parts = [f"let {let.name} = {format_expr(let.expr)}" for let in body.lets] + [format_expr(body.expr)]
        text = "; ".join(parts)
        if d.rounding:
            text += f" round {d.rounding[0]} {d.rounding[1]}"
        return text
