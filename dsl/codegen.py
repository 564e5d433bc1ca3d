"""Lower a checked scope to a Python function: compile once, evaluate many times.

The source is generated from the checked model only (names the compiler resolved, numbers it
parsed into Decimals held in the function's namespace), never from rule-file text, so nothing a
rule file says is ever executed. Every identifier in the generated code is a prefix plus a name that
the grammar restricts to ``[A-Za-z_][A-Za-z0-9_]*``.

Two variants come from the same generator: the fast one, and a traced one that also records the
``let`` values, the ``when`` branch and the table band taken, for explanations.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from . import ast
from .decimals import ROUNDING_MODES
from .model import KindScope

_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}


class EvaluationError(Exception):
    """A value could not be computed (the mean of an empty list, say)."""


def _mean(items: list, what: str) -> Decimal:
    if not items:
        raise EvaluationError(f"{what}: the mean of an empty list is undefined")
    return sum(items, Decimal(0)) / len(items)


def _least(items: list, what: str) -> Decimal:
    if not items:
        raise EvaluationError(f"{what}: the minimum of an empty list is undefined")
    return min(items)


def _most(items: list, what: str) -> Decimal:
    if not items:
        raise EvaluationError(f"{what}: the maximum of an empty list is undefined")
    return max(items)


@dataclass
class Plan:
    """What one evaluation computes: definitions in order, which are supplied instead, which inputs it
    reads and which constraints on those inputs it checks."""

    compute: tuple[str, ...]
    supplied: frozenset[str]
    traced: bool
    inputs: frozenset[str] = frozenset()
    constraints: tuple[str, ...] = ()


class _Gen:
    def __init__(self, scope: KindScope, traced: bool):
        self.scope = scope
        self.traced = traced
        self.consts: dict[Decimal, str] = {}
        self.namespace: dict[str, object] = {
            "Decimal": Decimal, "_mean": _mean, "_least": _least, "_most": _most, "_ZERO": Decimal(0),
            "EvaluationError": EvaluationError,
        }
        self.counter = itertools.count()
        self.table_funcs: dict[str, str] = {}
        self.table_sources: list[str] = []  # functions emitted before `evaluate`: tables, list checks
        self.current = ""

    def const(self, value: Decimal) -> str:
        key = (value, str(value))
        if key not in self.consts:
            name = f"_c{len(self.consts)}"
            self.consts[key] = name
            self.namespace[name] = value
        return self.consts[key]

    def temp(self) -> str:
        return f"_t{next(self.counter)}"

    # ------------------------------------------------------------ expressions
    def expr(self, e, local: dict[str, str]) -> str:  # noqa: C901 - one case per node type
        if isinstance(e, ast.Num):
            return self.const(e.value)
        if isinstance(e, ast.BoolLit):
            return "True" if e.value else "False"
        if isinstance(e, ast.EnumLit):
            return repr(e.value)
        if isinstance(e, ast.Ref):
            return local.get(e.name) or f"v_{e.name}"
        if isinstance(e, ast.FieldRef):
            return f"{local[e.var]}[{e.field!r}]"
        if isinstance(e, ast.Unary):
            return f"(not {self.expr(e.operand, local)})" if e.op == "not" else f"(-{self.expr(e.operand, local)})"
        if isinstance(e, ast.Binary):
            left, right = self.expr(e.left, local), self.expr(e.right, local)
            op = {"and": "and", "or": "or"}.get(e.op, _CMP.get(e.op, e.op))
            return f"({left} {op} {right})"
        if isinstance(e, ast.Call):
            return self.call(e, local)
        if isinstance(e, ast.When):
            site = f"{self.current}@{e.span.line}:{e.span.column}"
            out = self.wrap_branch(site, len(e.branches), self.expr(e.otherwise, local))
            for i in range(len(e.branches) - 1, -1, -1):
                cond, value = e.branches[i]
                out = f"({self.wrap_branch(site, i, self.expr(value, local))} if {self.expr(cond, local)} else {out})"
            return out
        if isinstance(e, ast.Aggregate):
            var = f"r_{e.var}_{next(self.counter)}"
            inner = dict(local)
            inner[e.var] = var
            source = self.expr(e.source, local)
            cond = f" if {self.expr(e.where, inner)}" if e.where is not None else ""
            if e.func == "count":
                return f"Decimal(sum(1 for {var} in {source}{cond}))"
            body = self.expr(e.body, inner)
            items = f"[{body} for {var} in {source}{cond}]"
            what = repr(self.current)
            if e.func == "sum":
                return f"sum({items}, _ZERO)"
            return {"mean": "_mean", "min": "_least", "max": "_most"}[e.func] + f"({items}, {what})"
        if isinstance(e, ast.Weighted):
            return "(" + " + ".join(f"{self.const(t.weight)} * {self.expr(t.expr, local)}" for t in e.terms) + ")"
        if isinstance(e, ast.Round):
            return self.rounding(self.expr(e.expr, local), e.places, e.mode)
        raise TypeError(f"cannot lower {type(e).__name__}")

    def wrap_branch(self, site: str, index: int, code: str) -> str:
        if not self.traced:
            return code
        return f"_tr.branch({site!r}, {index}, {code})"

    def rounding(self, code: str, places: int, mode: str) -> str:
        q = self.const(Decimal(1).scaleb(-places))
        mode_name = f"_mode_{mode.replace('-', '_')}"
        self.namespace[mode_name] = ROUNDING_MODES[mode]
        return f"({code}).quantize({q}, {mode_name})"

    def call(self, e: ast.Call, local) -> str:
        args = [self.expr(a, local) for a in e.args]
        if e.func in self.scope.tables:
            return f"{self.table(e.func)}({args[0]}{', _tr' if self.traced else ''})"
        if e.func == "ratio":
            zero = self.expr(e.named["zero"], local) if "zero" in e.named else "_ZERO"
            t = self.temp()
            return f"({zero} if ({t} := {args[1]}) == 0 else {args[0]} / {t})"
        if e.func == "min":
            return f"min({', '.join(args)})"
        if e.func == "max":
            return f"max({', '.join(args)})"
        if e.func == "clamp":
            return f"min(max({args[0]}, {args[1]}), {args[2]})"
        if e.func == "abs":
            return f"abs({args[0]})"
        raise TypeError(f"cannot lower call to {e.func}")

    def table(self, name: str) -> str:
        if name in self.table_funcs:
            return self.table_funcs[name]
        t = self.scope.tables[name]
        fname = f"_table_{name}"
        self.table_funcs[name] = fname
        param = f"p_{t.param}"
        lines = [f"def {fname}({param}{', _tr' if self.traced else ''}):"]
        for i, band in enumerate(t.bands):
            iv = band.interval
            conds = []
            if iv.lo is not None:
                conds.append(f"{param} {'>=' if iv.lo_closed else '>'} {self.const(iv.lo)}")
            if iv.hi is not None:
                conds.append(f"{param} {'<=' if iv.hi_closed else '<'} {self.const(iv.hi)}")
            value = self.expr(band.expr, {t.param: param})
            if self.traced:
                value = f"_tr.band({name!r}, {i}, {value})"
            lines.append(f"    if {' and '.join(conds) or 'True'}:")
            lines.append(f"        return {value}")
        lines.append(f"    raise EvaluationError('table {name}: no band covers ' + str({param}))")
        self.table_sources.append("\n".join(lines))
        return fname


def _number_checks(g: _Gen, prefix: str, var: str, c) -> list[str]:
    """Conditions under which an exact-decimal fast path must give way to InputCheck."""
    slow = [f"{var}.__class__ is not Decimal"]
    if c.lo is None or c.hi is None:  # with both bounds, an infinity fails one and a NaN cannot be compared
        slow.append(f"not {var}.is_finite()")
    if c.lo is not None:
        g.namespace[f"_lo{prefix}"] = c.lo
        slow.append(f"{var} {'<=' if c.lo_open else '<'} _lo{prefix}")
    if c.hi is not None:
        g.namespace[f"_hi{prefix}"] = c.hi
        slow.append(f"{var} {'>=' if c.hi_open else '>'} _hi{prefix}")
    if c.unit == "count":
        slow.append(f"{var} != {var}.to_integral_value()")
    return slow


def _fast_list_check(g: _Gen, i: int, c) -> str:
    """A function telling whether a list of records is already exact and in range (then used as is)."""
    g.namespace[f"_keys{i}"] = frozenset(f.name for f in c.fields)
    lines = [f"def _fast_list{i}(items):", "    for r in items:",
             f"        if r.__class__ is not dict or r.keys() != _keys{i}:", "            return False"]
    for j, f in enumerate(c.fields):
        lines += [f"        y = r[{f.name!r}]", f"        if {' or '.join(_number_checks(g, f'{i}_{j}', 'y', f))}:",
                  "            return False"]
    lines.append("    return True")
    return "\n".join(lines)


def _input_lines(g: _Gen, plan: Plan, checks: dict) -> list[str]:
    """Validation of the plan's inputs: inline comparisons for exact decimals, InputCheck otherwise."""
    from .inputs import MISSING

    g.namespace["_MISSING"] = MISSING
    lines = ["    get = inp.get"]
    for i, n in enumerate(sorted(plan.inputs)):
        c = checks[n]
        g.namespace[f"_k{i}"] = c
        general = f"_k{i}.value_from(inp, {n!r}, issues)"
        if c.kind == "list" and c.fields and all(f.kind == "number" and not f.has_default and not f.optional for f in c.fields):
            g.table_sources.append(_fast_list_check(g, i, c))
            lines += [f"    x = get({n!r}, _MISSING)",
                      f"    v_{n} = x if x.__class__ is list and _fast_list{i}(x) else {general}"]
            continue
        if c.kind != "number":
            lines.append(f"    v_{n} = {general}")
            continue
        slow = _number_checks(g, str(i), "x", c)
        lines.append(f"    x = get({n!r}, _MISSING)")
        if c.has_default:
            g.namespace[f"_d{i}"] = c.default_value
            lines += ["    if x is _MISSING or x is None:", f"        x = _d{i}", f"    elif {' or '.join(slow)}:"]
        else:
            lines.append(f"    if {' or '.join(slow)}:")
        lines += [f"        x = {general}", f"    v_{n} = x"]
    for n in sorted(plan.inputs):  # bounds naming another input: trained <= due
        c = checks[n]
        for ref, op, open_ in ((c.hi_ref, "<", c.hi_open), (c.lo_ref, ">", c.lo_open)):
            if ref and ref in plan.inputs:
                bad = f"v_{n} {'>' if op == '<' else '<'}{'=' if open_ else ''} v_{ref}"
                lines += [f"    if v_{n} is not None and v_{ref} is not None and {bad}:",
                          f"        issues.append(('bound', {n!r}, {ref!r}))"]
    lines += ["    if issues:", "        return None"]
    for cname in plan.constraints:
        lines += [f"    if not {g.expr(g.scope.constraint_exprs[cname], {})}:",
                  f"        issues.append(('constraint', {cname!r}))"]
    if plan.constraints:
        lines += ["    if issues:", "        return None"]
    return lines


def generate(scope: KindScope, plan: Plan, checks: dict) -> tuple[str, dict]:
    """Python source of ``evaluate(inp, sup, issues[, _tr])`` for the plan, and the namespace it runs in.

    It validates the plan's inputs from the request mapping ``inp`` (appending to ``issues`` and
    returning None when any is wrong), takes supplied values from ``sup``, and returns the computed values.
    """
    g = _Gen(scope, plan.traced)
    for name in list(plan.compute) + list(plan.constraints):
        for dep in scope.deps[name]:
            if dep in scope.params:
                g.namespace[f"v_{dep}"] = scope.params[dep].value
    body: list[str] = _input_lines(g, plan, checks)
    for name in sorted(plan.supplied):
        body.append(f"    v_{name} = sup[{name!r}]")
    if plan.traced:
        body.append("    _tr.inputs = {" + ", ".join(f"{n!r}: v_{n}" for n in sorted(plan.inputs)) + "}")
    for name in plan.compute:
        d = scope.definitions[name]
        b = scope.bodies[name]
        g.current = name
        local: dict[str, str] = {}
        if plan.traced:
            body.append(f"    _tr.enter({name!r})")
        for let in b.lets:
            var = f"l_{name}_{let.name}"
            body.append(f"    {var} = {g.expr(let.expr, local)}")
            local[let.name] = var
            if plan.traced:
                body.append(f"    _tr.let({name!r}, {let.name!r}, {var})")
        code = g.expr(b.expr, local)
        if d.rounding and plan.traced:
            body.append(f"    v_{name} = {code}")
            body.append(f"    _tr.unrounded({name!r}, v_{name})")
            code = g.rounding(f"v_{name}", *d.rounding)
        elif d.rounding:
            code = g.rounding(code, *d.rounding)
        body.append(f"    v_{name} = {code}")
    returned = ", ".join(f"{n!r}: v_{n}" for n in plan.compute)
    body.append(f"    return {{{returned}}}")
    args = "inp, sup, issues, _tr" if plan.traced else "inp, sup, issues"
    source = "\n".join(g.table_sources + [f"def evaluate({args}):"] + body) + "\n"
    return source, g.namespace


def build(scope: KindScope, plan: Plan, checks: dict) -> Callable:
    source, namespace = generate(scope, plan, checks)
    code = compile(source, f"<bagalau {scope.kind} plan>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated from the checked model only (see module docstring)
    fn = namespace["evaluate"]
    fn.__source__ = source
    return fn


def build_grade(name: str, bands) -> Callable:
    """``grade(value) -> band name or None`` for a grade scale, as a chain of exact comparisons."""
    namespace: dict[str, object] = {}
    lines = ["def grade(v):"]
    for i, (iv, band) in enumerate(bands):
        conds = []
        if iv.lo is not None:
            namespace[f"_lo{i}"] = iv.lo
            conds.append(f"v {'>=' if iv.lo_closed else '>'} _lo{i}")
        if iv.hi is not None:
            namespace[f"_hi{i}"] = iv.hi
            conds.append(f"v {'<=' if iv.hi_closed else '<'} _hi{i}")
        lines += [f"    if {' and '.join(conds) or 'True'}:", f"        return {band!r}"]
    lines.append("    return None")
    exec(compile("\n".join(lines) + "\n", f"<bagalau grade {name}>", "exec"), namespace)  # noqa: S102 - band names are identifiers
    return namespace["grade"]
