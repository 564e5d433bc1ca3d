"""Types and units of expressions.

A type is a tuple: ``("num", unit)``, ``("bool",)``, ``("text",)``, ``("date",)``,
``("enum", choices)``, ``("list", record)`` or ``("record", record)``. Units are ``count``,
``percent``, ``share``, ``points`` and ``number`` (a plain, dimensionless number; the ``decimal``
input type is a plain number). A plain number combines with any unit; two different units do not
add, subtract or compare (no comparing a share with points, no adding a count to points).
"""

from __future__ import annotations

from . import ast
from .diagnostics import DiagnosticSink
from .model import DEFAULT_UNITS, KindScope

NUMBER = ("num", "number")
BOOL = ("bool",)
UNKNOWN = ("unknown",)


def unit_type(unit: str) -> tuple:
    return ("num", "number" if unit in ("decimal", "number", "") else unit)


def type_of_spec(spec: ast.TypeSpec) -> tuple:
    if spec.kind == "number":
        return unit_type(spec.unit)
    if spec.kind == "enum":
        return ("enum", tuple(spec.choices))
    if spec.kind == "list":
        return ("list", spec.record)
    return (spec.kind,)


def describe(t: tuple) -> str:
    if t[0] == "num":
        return "a plain number" if t[1] == "number" else f"a value in {t[1]}"
    if t[0] == "bool":
        return "a yes/no value"
    if t[0] == "list":
        return f"a list of {t[1]}"
    if t[0] == "record":
        return f"a {t[1]} record"
    if t[0] == "enum":
        return "one of " + ", ".join(t[1])
    return f"a {t[0]}"


def join_units(a: str, b: str) -> str | None:
    """The unit of a + b, or None when the two cannot be combined."""
    if a == b:
        return a
    if a == "number":
        return b
    if b == "number":
        return a
    return None


class TypeChecker:
    def __init__(self, scope: KindScope, sink: DiagnosticSink):
        self.scope = scope
        self.sink = sink

    def global_type(self, name: str) -> tuple:
        s = self.scope
        if name in s.inputs:
            return type_of_spec(s.inputs[name].type)
        if name in s.params:
            return unit_type(s.params[name].unit)
        if name in s.definitions:
            return unit_type(s.unit_of(name))
        return UNKNOWN

    def check_definition(self, name: str) -> None:
        d = self.scope.definitions[name]
        body = self.scope.bodies[name]
        env: dict[str, tuple] = {}
        for let in body.lets:
            env[let.name] = self.infer(let.expr, env)
        t = self.infer(body.expr, env)
        declared = d.unit or DEFAULT_UNITS[d.kind]
        if t[0] == "unknown":
            return
        if t[0] != "num":
            self.sink.report("E300", body.expr.span, f"{d.kind} {name} must be a number, but its formula gives {describe(t)}")
        elif join_units(unit_type(declared)[1], t[1]) is None and not (t[1] == "count" and declared == "points"):
            # a count may be taken as points (one point per item); shares, percents and points may not mix
            self.sink.report("E301", body.expr.span,
                             f"{d.kind} {name} is in {unit_type(declared)[1]}, but its formula gives {describe(t)}")

    def check_constraint(self, name: str) -> None:
        t = self.infer(self.scope.constraint_exprs[name], {})
        if t not in (BOOL, UNKNOWN):
            self.sink.report("E300", self.scope.constraints[name].expr.span,
                             f"constraint {name} must be a condition (yes/no), but gives {describe(t)}")

    def expect_num(self, e, t) -> str:
        if t[0] == "num":
            return t[1]
        if t != UNKNOWN:
            self.sink.report("E300", e.span, f"expected a number here, got {describe(t)}")
        return "number"

    def expect_bool(self, e, t) -> None:
        if t not in (BOOL, UNKNOWN):
            self.sink.report("E300", e.span, f"expected a condition (yes/no) here, got {describe(t)}")

    def infer(self, e: ast.Expr, env: dict) -> tuple:  # noqa: C901 - one case per node type
        if isinstance(e, ast.Num):
            return NUMBER
        if isinstance(e, ast.BoolLit):
            return BOOL
        if isinstance(e, ast.EnumLit):
            return ("enum", (e.value,))
        if isinstance(e, ast.Ref):
            return env.get(e.name) or self.global_type(e.name)
        if isinstance(e, ast.FieldRef):
            rt = env.get(e.var)
            if rt and rt[0] == "record" and rt[1] in self.scope.records:
                for f in self.scope.records[rt[1]].fields:
                    if f.name == e.field:
                        return type_of_spec(f.type)
            return UNKNOWN
        if isinstance(e, ast.Unary):
            t = self.infer(e.operand, env)
            if e.op == "not":
                self.expect_bool(e.operand, t)
                return BOOL
            return ("num", self.expect_num(e.operand, t))
        if isinstance(e, ast.Binary):
            return self._binary(e, env)
        if isinstance(e, ast.Call):
            return self._call(e, env)
        if isinstance(e, ast.When):
            unit = None
            for cond, value in e.branches:
                self.expect_bool(cond, self.infer(cond, env))
            result = None
            for value in [v for _, v in e.branches] + [e.otherwise]:
                t = self.infer(value, env)
                if t == UNKNOWN:
                    continue
                if result is None:
                    result = t
                    unit = t[1] if t[0] == "num" else None
                    continue
                if t[0] == "num" and result[0] == "num":
                    joined = join_units(unit, t[1])
                    if joined is None:
                        self.sink.report("E301", value.span,
                                         f"this branch gives {describe(t)}, another gives {describe(result)}")
                    else:
                        unit = joined
                        result = ("num", joined)
                elif t != result:
                    self.sink.report("E300", value.span, f"this branch gives {describe(t)}, another gives {describe(result)}")
            return result or UNKNOWN
        if isinstance(e, ast.Aggregate):
            st = self.infer(e.source, env)
            if st[0] != "list":
                if st != UNKNOWN:
                    self.sink.report("E300", e.source.span, f"{e.func}(…) goes over a list, but this is {describe(st)}")
                inner = dict(env)
                inner[e.var] = UNKNOWN
            else:
                inner = dict(env)
                inner[e.var] = ("record", st[1])
            if e.where is not None:
                self.expect_bool(e.where, self.infer(e.where, inner))
            if e.func == "count":
                if e.body is not None:
                    self.sink.report("E205", e.body.span, "count(…) counts items; it takes no `: value` part")
                return ("num", "count")
            if e.body is None:
                self.sink.report("E205", e.span, f"{e.func}(…) needs a value for each item: {e.func}({e.var} in … : {e.var}.field)")
                return UNKNOWN
            bt = self.infer(e.body, inner)
            return ("num", self.expect_num(e.body, bt))
        if isinstance(e, ast.Weighted):
            unit = "number"
            for term in e.terms:
                t = self.infer(term.expr, env)
                u = self.expect_num(term.expr, t)
                joined = join_units(unit, u)
                if joined is None:
                    self.sink.report("E301", term.expr.span, f"weighted terms must share a unit: {u} and {unit}")
                else:
                    unit = joined
            return ("num", unit)
        if isinstance(e, ast.Round):
            return ("num", self.expect_num(e.expr, self.infer(e.expr, env)))
        return UNKNOWN

    def _binary(self, e: ast.Binary, env) -> tuple:
        lt, rt = self.infer(e.left, env), self.infer(e.right, env)
        if e.op in ("and", "or"):
            self.expect_bool(e.left, lt)
            self.expect_bool(e.right, rt)
            return BOOL
        if e.op in ("==", "!=") and lt[0] == rt[0] and lt[0] in ("bool", "text", "date", "enum"):
            return BOOL
        lu, ru = self.expect_num(e.left, lt), self.expect_num(e.right, rt)
        if e.op in ("+", "-", "<", "<=", ">", ">=", "==", "!="):
            joined = join_units(lu, ru)
            if joined is None:
                verb = {"+": "add", "-": "subtract"}.get(e.op, "compare")
                self.sink.report("E301", e.span, f"cannot {verb} {describe(('num', lu))} and {describe(('num', ru))}")
                joined = lu
            return ("num", joined) if e.op in ("+", "-") else BOOL
        if e.op == "*":
            # points scaled by anything stay points; a count, share or percent times a
            # coefficient becomes a plain number (which a definition may then take as points)
            if "points" in (lu, ru) and {lu, ru} <= {"points", "number", "share", "percent"} and (lu, ru) != ("points", "points"):
                return ("num", "points")
            return NUMBER
        # a quotient is a plain number: points / max * 100 may become a percent, points / 2 points again
        return NUMBER

    def _call(self, e: ast.Call, env) -> tuple:
        arg_types = [self.infer(a, env) for a in e.args]
        named_types = {k: self.infer(v, env) for k, v in e.named.items()}
        if e.func in self.scope.tables:
            t = self.scope.tables[e.func]
            if arg_types:
                want = type_of_spec(t.param_type)
                got = arg_types[0]
                if got[0] == "num" and want[0] == "num" and join_units(got[1], want[1]) is None:
                    self.sink.report("E301", e.args[0].span, f"table {e.func} takes {describe(want)}, got {describe(got)}")
            unit = "number"
            for band in t.bands:
                bt = self.infer(band.expr, {t.param: type_of_spec(t.param_type)})
                if bt[0] == "num":
                    unit = join_units(unit, bt[1]) or unit
            return ("num", unit)
        units = [self.expect_num(a, t) for a, t in zip(e.args, arg_types)]
        if e.func == "ratio":
            for k, v in e.named.items():
                self.expect_num(v, named_types[k])
            if len(units) == 2 and units[0] == units[1]:
                return NUMBER
            return NUMBER
        if e.func in ("min", "max", "clamp"):
            unit = "number"
            for a, u in zip(e.args, units):
                joined = join_units(unit, u)
                if joined is None:
                    self.sink.report("E301", a.span, f"{e.func}(…) arguments must share a unit: {unit} and {u}")
                else:
                    unit = joined
            return ("num", unit)
        if e.func == "abs":
            return ("num", units[0] if units else "number")
        return UNKNOWN
