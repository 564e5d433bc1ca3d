"""Evaluate a compiled methodology version for one subject, exactly, with an optional explanation.

Per request: the plan (which definitions to compute, which the caller supplied) is looked up in a
cache of generated functions; the inputs that plan needs are validated (all problems at once); the
function runs under the exact decimal context; grades are looked up; an explanation is built from
the traced run when asked for.
"""

from __future__ import annotations

import decimal
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import ast
from .codegen import EvaluationError, Plan, build, build_grade
from .decimals import CONTEXT, NotADecimal, format_decimal, to_decimal
from .inputs import InputCheck
from .errors import EvaluationFailed, FieldIssue, InputError
from .model import SCORING_KINDS, KindScope, VersionModel
from .printer import format_expr, walk
from .ranges import UNBOUNDED

LANGUAGES = ("kk", "ru", "en")
_NONE: frozenset = frozenset()


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
        self.inputs: dict[str, Any] = {}

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


@dataclass(frozen=True)
class _Prepared:
    """Everything one plan needs at run time, built once."""

    fn: Any  # the generated function: validates the plan's inputs, then computes
    compute: tuple[str, ...]
    needed_inputs: frozenset[str]


@dataclass(frozen=True)
class _KindInfo:
    """Per subject kind, what every request needs: built once per version."""

    scope: KindScope
    checks: dict[str, InputCheck]
    names: frozenset[str]  # inputs and definitions: anything a request may send
    definitions: frozenset[str]
    grades: tuple  # (name, grade function)
    when_sites: dict
    supplied_ranges: dict  # definition -> (lo, hi) a supplied value must lie in


class Evaluator:
    """Evaluates one compiled version. Thread-safe; generated functions are cached per plan."""

    MAX_PLANS = 256

    def __init__(self, model: VersionModel):
        self.model = model
        self._plans: dict[tuple, _Prepared] = {}
        self._lock = threading.Lock()
        self._kinds: dict[str, _KindInfo] = {}
        for kind, scope in model.scopes.items():
            sites = {}
            for name, body in scope.bodies.items():
                for e in [body.expr] + [l.expr for l in body.lets]:
                    per_item = {id(n) for agg in walk(e) if isinstance(agg, ast.Aggregate)
                                for part in (agg.where, agg.body) if part is not None for n in walk(part)}
                    for node in walk(e):
                        if isinstance(node, ast.When) and id(node) not in per_item:  # one branch per list item: not shown
                            sites[f"{name}@{node.span.line}:{node.span.column}"] = node
            self._kinds[kind] = _KindInfo(
                scope,
                {n: InputCheck(scope, d, scope.records) for n, d in scope.inputs.items()},
                frozenset(scope.inputs) | frozenset(scope.definitions),
                frozenset(scope.definitions),
                tuple((n, build_grade(n, [(b.interval, b.name) for b in g.bands])) for n, g in scope.grades.items()),
                sites,
                {n: self.supplied_range(scope, n) for n in scope.definitions},
            )

    def checks(self, kind: str) -> dict[str, InputCheck]:
        return self._kinds[kind].checks

    # ------------------------------------------------------------ plans
    def plan(self, kind: str, targets: tuple[str, ...] | None, supplied: frozenset[str], traced: bool) -> _Prepared:
        key = (kind, targets, supplied, traced)
        hit = self._plans.get(key)  # a plain dict read is atomic; building twice under a race is harmless
        if hit is not None:
            return hit
        info = self._kinds[kind]
        scope = info.scope
        compute, inputs = self.needed(scope, targets, supplied)
        constraints = tuple(c for c in scope.constraints
                            if {d for d in scope.deps[c] if d in scope.inputs}
                            and {d for d in scope.deps[c] if d in scope.inputs} <= inputs)
        plan = Plan(tuple(compute), supplied, traced, frozenset(inputs), constraints)
        entry = _Prepared(build(scope, plan, info.checks), tuple(compute), frozenset(inputs))
        with self._lock:
            if len(self._plans) >= self.MAX_PLANS:
                self._plans.clear()
            self._plans[key] = entry
        return entry

    @staticmethod
    def needed(scope: KindScope, targets, supplied) -> tuple[list[str], set[str]]:
        """Definitions to compute (in order) and inputs required, for the targets.

        Without targets, everything the version's top-level values need, walking down from them and
        stopping at supplied values: what only a supplied value needed is neither computed nor required.
        """
        compute: set[str] = set()
        inputs: set[str] = set()
        if targets is None:
            used = {d for n in scope.definitions for d in scope.deps[n]}
            targets = [n for n in scope.definitions if n not in used]
        stack = list(targets)
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
        info = self._kinds.get(req.subject_kind)
        if info is None:
            raise InputError([FieldIssue("subject.kind", f"{req.subject_kind!r} is not a subject of "
                                         f"{model.key}; expected one of {', '.join(model.subjects)}")])
        inputs = req.inputs
        if not isinstance(inputs, dict):
            raise InputError([FieldIssue("inputs", "expected an object of name: value")])
        scope = info.scope
        issues: list = []
        if req.language not in LANGUAGES:
            issues.append(FieldIssue("language", f"{req.language!r} is not supported; expected kk, ru or en"))
        keys = inputs.keys()
        supplied = _NONE if info.definitions.isdisjoint(keys) else frozenset(keys & info.definitions)
        if not keys <= info.names:
            for n in sorted(keys - info.names):
                issues.append(FieldIssue(n, f"unknown input for {model.key} ({req.subject_kind})"))
        targets = None
        if req.only:
            targets = tuple(dict.fromkeys(req.only))
            for n in targets:
                if n not in info.definitions:
                    issues.append(FieldIssue("only", f"{n} is not a value of {model.key} ({req.subject_kind})"))
            targets = tuple(n for n in targets if n in info.definitions)
        prepared = self.plan(req.subject_kind, targets, supplied, req.explain)
        sup = {n: self._supplied_value(scope, n, inputs[n], issues) for n in supplied} if supplied else {}
        tracer = _Tracer() if req.explain else None
        try:
            with decimal.localcontext(CONTEXT):
                computed = prepared.fn(inputs, sup, issues, tracer) if tracer else prepared.fn(inputs, sup, issues)
        except (EvaluationError, ArithmeticError, TypeError) as e:
            raise EvaluationFailed(self._failure_message(req, sup, supplied, targets, e)) from None
        if issues:
            raise InputError(self._issues(scope, issues, req.language, tracer, inputs, sup, prepared))
        if supplied:
            computed = {**sup, **computed}
        if targets is not None:
            values = {n: computed[n] for n in targets}
        elif supplied:
            values = {n: computed[n] for n in scope.order if n in computed}
        else:
            values = computed
        grades = {}
        for n, grade in info.grades:
            v = values.get(n)
            if v is not None:
                band = grade(v)
                if band is not None:
                    grades[n] = band
        result = EvalResult(model.methodology, model.version, model.content_hash, req.subject_id, req.subject_kind,
                            values, grades, sorted(supplied) if supplied else [])
        if tracer is not None:
            result.explanation = self._explain(scope, req, tracer.inputs, computed, prepared.compute, supplied, tracer)
        return result

    def _issues(self, scope, raw: list, language: str, tracer, inputs, sup, prepared) -> list[FieldIssue]:
        """Turn the generated code's markers for cross-input bounds and constraints into field issues."""
        out: list[FieldIssue] = []
        values = None
        for item in raw:
            if isinstance(item, FieldIssue):
                out.append(item)
                continue
            if values is None:
                values = {n: self._kinds[scope.kind].checks[n].peek(inputs) for n in prepared.needed_inputs}
            if item[0] == "bound":
                _, n, ref = item
                c = self._kinds[scope.kind].checks[n]
                op = ("<" if c.hi_open else "<=") if c.hi_ref == ref else (">" if c.lo_open else ">=")
                out.append(FieldIssue(n, f"{format_decimal(values[n])} must be {op} {ref} ({format_decimal(values[ref])})"))
            else:
                _, cname = item
                con = scope.constraints[cname]
                message = f"violates {cname}: {label_of(con.labels, language, cname)} ({format_expr(con.expr)})"
                out.extend(FieldIssue(d, message) for d in sorted(d for d in scope.deps[cname] if d in scope.inputs))
        return out

    def _supplied_value(self, scope: KindScope, name: str, raw: Any, issues: list[FieldIssue]) -> Decimal | None:
        lo, hi = self._kinds[scope.kind].supplied_ranges[name]
        if raw.__class__ is Decimal and raw.is_finite() and (lo is None or raw >= lo) and (hi is None or raw <= hi):
            return raw
        d = scope.definitions[name]
        try:
            v = to_decimal(raw)
        except NotADecimal as e:
            issues.append(FieldIssue(name, f"{e}; expected the value of {d.kind} {name}"))
            return None
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

    def _failure_message(self, req, sup, supplied, targets, error) -> str:
        tracer = _Tracer()
        fn = self.plan(req.subject_kind, targets, supplied, True).fn
        try:
            with decimal.localcontext(CONTEXT):
                fn(req.inputs, sup, [], tracer)
        except Exception:  # noqa: BLE001 - the traced run only tells where it stopped
            pass
        where = tracer.current or "a value"
        reason = str(error) if isinstance(error, EvaluationError) else {
            decimal.DivisionByZero: "division by zero", decimal.InvalidOperation: "an invalid operation",
        }.get(type(error), type(error).__name__)
        return f"could not compute {where}: {reason}"

    # ------------------------------------------------------------ explanation
    def _explain(self, scope, req, inputs, all_values, compute, supplied, tracer) -> list[ExplanationItem]:
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
            for site, node in self._kinds[scope.kind].when_sites.items():
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
