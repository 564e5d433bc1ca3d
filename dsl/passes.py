"""The compiler's checks, one function per pass. ``compiler.PASSES`` lists them in order.

Each pass takes the ``Compilation`` (the version being built and the diagnostic sink) and reports
what it finds; a pass never stops at its first problem.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from decimal import Decimal

from . import ast
from .decimals import format_decimal
from .diagnostics import DiagnosticSink, Span
from .model import BUILTINS, SCORING_KINDS, STATUSES, Body, KindScope, bound_value, item_key, merge_scope
from .printer import format_expr, walk
from .ranges import UNBOUNDED, Range, RangeAnalysis, bounded_range, intersect
from .types import TypeChecker, type_of_spec


@dataclass
class Compilation:
    rule_file: ast.RuleFile
    sink: DiagnosticSink
    base: object = None  # the VersionModel this one extends, when it is an amendment
    common: dict = field(default_factory=dict)
    overlays: dict = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    scopes: dict[str, KindScope] = field(default_factory=dict)
    tests: list[ast.TestDecl] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # pass name -> seconds

    @property
    def header(self) -> ast.Header:
        return self.rule_file.header


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


# ---------------------------------------------------------------- metadata


def check_metadata(c: Compilation) -> None:
    h, sink = c.header, c.sink
    if h.status not in STATUSES:
        span = h.status_span if h.status else h.span
        sink.report("E700", span, f"status must be one of {', '.join(STATUSES)}" + (f", not {h.status!r}" if h.status else " (add a `status` line)"))
    if not h.basis:
        sink.report("E700", h.span, "the version has no legal basis (add `basis \"…\"`)")
    if "kk" not in h.title and not (c.base and c.base.title.get("kk")):
        sink.report("E700", h.span, "the version has no Kazakh title (add `title kk \"…\"`)")
    if h.effective_from and h.effective_to and h.effective_to < h.effective_from:
        sink.report("E700", h.span, f"effective to {h.effective_to} is before effective from {h.effective_from}")
    if h.status in ("in_force", "repealed") and not h.effective_from:
        sink.report("E700", h.span, f"a version with status {h.status} needs `effective from DATE`")
    c.subjects = list(h.subjects) or (list(c.base.subjects) if c.base else [])
    if not c.subjects:
        sink.report("E700", h.span, "the version names no subject kinds (add `subjects central, local`)")
    for kind in c.subjects:
        if kind not in ("central", "local", "servant"):
            sink.report("E207", h.subjects_span, f"unknown subject kind {kind!r}; use central, local or servant")


# ---------------------------------------------------------------- declarations, amendments and variants


def collect_declarations(c: Compilation) -> None:
    """Merge the file's declarations (over its base's, for an amendment) into common + per-kind overlays."""
    sink = c.sink
    amendment = c.base is not None
    if amendment:
        c.common = dict(c.base.common)
        c.overlays = {k: dict(v) for k, v in c.base.overlays.items()}
    defined_here: dict[tuple[str, str], Span] = {}

    def known(key) -> bool:
        return key in c.common or any(key in o for o in c.overlays.values())

    def add_plain(item) -> None:
        """A declaration without `override`: new here, and new to the base for an amendment."""
        key = item_key(item)
        if key in defined_here:
            sink.report("E201", item.span, f"{item.name} is already defined at line {defined_here[key].line}")
            return
        if amendment and key in c.common:
            sink.report("E602", item.span,
                        f"{item.name} is defined in base version {c.base.version}; write `override` to replace it")
            return
        defined_here[key] = item.span
        c.common[key] = item

    for item in c.rule_file.items:
        if isinstance(item, ast.TestDecl):
            c.tests.append(item)
        elif isinstance(item, ast.Override):
            inner = item.item
            key = item_key(inner)
            if not amendment:
                sink.report("E604", item.span, "`override` is only for amendments (a version that `extends` another)")
                add_plain(inner)
            elif not known(key):
                sink.report("E600", item.span,
                            f"base version {c.base.version} has no {inner.name} to override{_suggest(inner.name, [k[1] for k in c.common])}")
            else:
                c.common[key] = inner
                defined_here[key] = inner.span
                for o in c.overlays.values():
                    o.pop(key, None)
        elif isinstance(item, ast.Remove):
            if not amendment:
                sink.report("E604", item.span, "`remove` at the top level is only for amendments; inside `for KIND { }` it removes for that kind")
                continue
            for name, span in item.names:
                keys = [k for k in list(c.common) + [k for o in c.overlays.values() for k in o] if k[1] == name]
                if not keys:
                    sink.report("E601", span, f"base version {c.base.version} has no {name} to remove")
                for k in keys:
                    c.common.pop(k, None)
                    for o in c.overlays.values():
                        o.pop(k, None)
        elif isinstance(item, ast.Variant):
            pass  # after the common declarations, so that a variant may refer to any of them
        else:
            add_plain(item)

    for item in c.rule_file.items:
        if not isinstance(item, ast.Variant):
            continue
        for kind in item.kinds:
            if kind not in c.subjects:
                sink.report("E207", item.span, f"`for {kind}`: this version's subjects are {', '.join(c.subjects) or 'not given'}")
        seen: dict[tuple[str, str], Span] = {}
        for inner in item.items:
            if isinstance(inner, ast.Remove):
                for name, span in inner.names:
                    keys = [k for k in c.common if k[1] == name]
                    if not keys:
                        sink.report("E601", span, f"there is no {name} to remove for {', '.join(item.kinds)}")
                    for kind in item.kinds:
                        for k in keys:
                            c.overlays.setdefault(kind, {})[k] = None
                continue
            if isinstance(inner, ast.Override):
                inner = inner.item
            if isinstance(inner, (ast.TestDecl, ast.Variant)):
                sink.report("E100", inner.span, "tests and nested `for` blocks belong at the top level of the file")
                continue
            key = item_key(inner)
            if key in seen:
                sink.report("E201", inner.span, f"{inner.name} is already defined at line {seen[key].line} in this block")
                continue
            seen[key] = inner.span
            for kind in item.kinds:
                c.overlays.setdefault(kind, {})[key] = inner


def build_scopes(c: Compilation) -> None:
    for kind in c.subjects:
        c.scopes[kind] = merge_scope(kind, c.common, c.overlays.get(kind, {}))


# ---------------------------------------------------------------- names


class _Names:
    """Resolves every name in a scope; records dependencies; expands helpers."""

    def __init__(self, scope: KindScope, sink: DiagnosticSink):
        self.scope = scope
        self.sink = sink
        self.used: set[str] = set()

    def resolve(self, e, local: dict[str, str], deps: set[str], helper_stack=()) -> ast.Expr:
        """Check names in e and return it with helper calls expanded. local: name -> 'let'|'var'|'param'|'record:R'."""
        s = self.scope
        if isinstance(e, ast.Ref):
            if e.name in local:
                return e
            if e.name in s.inputs or e.name in s.params or e.name in s.definitions:
                deps.add(e.name)
                self.used.add(e.name)
                return e
            if e.name in s.tables or e.name in s.helpers:
                self.sink.report("E205", e.span, f"{e.name} is a {'table' if e.name in s.tables else 'helper'}; call it as {e.name}(…)")
                return e
            candidates = list(local) + list(s.global_names())
            self.sink.report("E200", e.span, f"unknown name {e.name}{_suggest(e.name, candidates)}")
            return e
        if isinstance(e, ast.FieldRef):
            kind = local.get(e.var)
            if kind is None:
                self.sink.report("E200", e.span, f"unknown name {e.var} (fields are read from the item of sum/count/mean/min/max)")
            elif kind.startswith("record:"):
                rec = s.records.get(kind[7:])
                if rec is not None and e.field not in {f.name for f in rec.fields}:
                    self.sink.report("E206", e.span, f"record {rec.name} has no field {e.field}{_suggest(e.field, [f.name for f in rec.fields])}")
            return e
        if isinstance(e, ast.Aggregate):
            source = self.resolve(e.source, local, deps, helper_stack)
            inner = dict(local)
            inner[e.var] = "var"
            if isinstance(source, ast.Ref) and source.name in s.inputs:
                spec = s.inputs[source.name].type
                if spec.kind == "list":
                    inner[e.var] = f"record:{spec.record}"
            where = self.resolve(e.where, inner, deps, helper_stack) if e.where is not None else None
            body = self.resolve(e.body, inner, deps, helper_stack) if e.body is not None else None
            return ast.Aggregate(e.func, e.var, source, where, body, e.span)
        if isinstance(e, ast.Call):
            args = [self.resolve(a, local, deps, helper_stack) for a in e.args]
            named = {k: self.resolve(v, local, deps, helper_stack) for k, v in e.named.items()}
            call = ast.Call(e.func, args, named, e.span)
            if e.func in s.helpers:
                return self._expand(call, s.helpers[e.func], local, deps, helper_stack)
            if e.func in s.tables:
                self.used.add(e.func)
                if len(args) != 1 or named:
                    self.sink.report("E205", e.span, f"table {e.func} takes one value")
                return call
            if e.func in BUILTINS:
                lo, hi = BUILTINS[e.func]
                if len(args) < lo or (hi is not None and len(args) > hi):
                    want = f"{lo}" if lo == hi else f"at least {lo}"
                    self.sink.report("E205", e.span, f"{e.func}(…) takes {want} values, got {len(args)}")
                allowed = {"zero"} if e.func == "ratio" else set()
                for k in named:
                    if k not in allowed:
                        self.sink.report("E205", e.named[k].span, f"{e.func}(…) has no option {k}")
                return call
            known = list(BUILTINS) + list(s.tables) + list(s.helpers)
            self.sink.report("E204", e.span, f"unknown function {e.func}{_suggest(e.func, known)}")
            return call
        if isinstance(e, ast.When):
            return ast.When([(self.resolve(c, local, deps, helper_stack), self.resolve(v, local, deps, helper_stack))
                             for c, v in e.branches], self.resolve(e.otherwise, local, deps, helper_stack), e.span)
        if isinstance(e, ast.Unary):
            return ast.Unary(e.op, self.resolve(e.operand, local, deps, helper_stack), e.span)
        if isinstance(e, ast.Binary):
            left, right = e.left, e.right
            if e.op in ("==", "!="):  # `group == b_category`: a bare choice of the enum on the other side
                left, right = self._enum_literal(left, right, local), self._enum_literal(right, left, local)
            return ast.Binary(e.op, self.resolve(left, local, deps, helper_stack),
                              self.resolve(right, local, deps, helper_stack), e.span)
        if isinstance(e, ast.Weighted):
            return ast.Weighted([ast.WeightTerm(t.weight, t.text, self.resolve(t.expr, local, deps, helper_stack), t.span)
                                 for t in e.terms], e.span)
        if isinstance(e, ast.Round):
            return ast.Round(self.resolve(e.expr, local, deps, helper_stack), e.places, e.mode, e.span)
        return e

    def _enum_literal(self, e, other, local: dict[str, str]):
        """e as an enum choice when it is a bare name naming a choice of the enum compared with it."""
        if not isinstance(e, ast.Ref) or e.name in local or e.name in self.scope.global_names():
            return e
        spec = None
        if isinstance(other, ast.Ref) and other.name in self.scope.inputs and other.name not in local:
            spec = self.scope.inputs[other.name].type
        elif isinstance(other, ast.FieldRef) and local.get(other.var, "").startswith("record:"):
            rec = self.scope.records.get(local[other.var][7:])
            spec = next((f.type for f in rec.fields if f.name == other.field), None) if rec else None
        if spec is not None and spec.kind == "enum" and e.name in spec.choices:
            return ast.EnumLit(e.name, e.span)
        return e

    def _expand(self, call: ast.Call, helper: ast.HelperDecl, local, deps, helper_stack) -> ast.Expr:
        self.used.add(helper.name)
        if helper.name in helper_stack:
            self.sink.report("E203", call.span, f"helper {helper.name} calls itself: {' → '.join(helper_stack + (helper.name,))}")
            return call
        if len(call.args) != len(helper.params) or call.named:
            self.sink.report("E205", call.span, f"helper {helper.name} takes {len(helper.params)} values, got {len(call.args)}")
            return call
        mapping = dict(zip(helper.params, call.args))
        body = _substitute(helper.expr, mapping)
        # the arguments may use the caller's let names and list items (k.quality), so resolve in its scope
        return self.resolve(body, local, deps, helper_stack + (helper.name,))


def _substitute(e, mapping: dict[str, ast.Expr]):
    if isinstance(e, ast.Ref) and e.name in mapping:
        return mapping[e.name]
    if isinstance(e, ast.Unary):
        return ast.Unary(e.op, _substitute(e.operand, mapping), e.span)
    if isinstance(e, ast.Binary):
        return ast.Binary(e.op, _substitute(e.left, mapping), _substitute(e.right, mapping), e.span)
    if isinstance(e, ast.Call):
        return ast.Call(e.func, [_substitute(a, mapping) for a in e.args],
                        {k: _substitute(v, mapping) for k, v in e.named.items()}, e.span)
    if isinstance(e, ast.When):
        return ast.When([(_substitute(c, mapping), _substitute(v, mapping)) for c, v in e.branches],
                        _substitute(e.otherwise, mapping), e.span)
    if isinstance(e, ast.Aggregate):
        inner = {k: v for k, v in mapping.items() if k != e.var}
        return ast.Aggregate(e.func, e.var, _substitute(e.source, mapping),
                             _substitute(e.where, inner) if e.where is not None else None,
                             _substitute(e.body, inner) if e.body is not None else None, e.span)
    if isinstance(e, ast.Weighted):
        return ast.Weighted([ast.WeightTerm(t.weight, t.text, _substitute(t.expr, mapping), t.span) for t in e.terms], e.span)
    if isinstance(e, ast.Round):
        return ast.Round(_substitute(e.expr, mapping), e.places, e.mode, e.span)
    return e


def check_names(c: Compilation) -> None:
    for scope in c.scopes.values():
        names = _Names(scope, c.sink)
        for name, d in scope.definitions.items():
            deps: set[str] = set()
            local: dict[str, str] = {}
            lets = []
            for let in d.lets:
                if let.name in local or let.name in scope.global_names():
                    c.sink.report("E201", let.span, f"let {let.name} hides another name; choose a different one")
                lets.append(ast.LetStmt(let.name, names.resolve(let.expr, local, deps), let.span))
                local[let.name] = "let"
            expr = names.resolve(d.expr, local, deps)
            scope.bodies[name] = Body(lets, expr)
            scope.deps[name] = deps
            used_lets = {n.name for e in [expr] + [l.expr for l in lets] for n in walk(e) if isinstance(n, ast.Ref)}
            for let in d.lets:
                if let.name not in used_lets:
                    c.sink.report("W202", let.span, f"let {let.name} is never used")
        for name, con in scope.constraints.items():
            deps = set()
            scope.constraint_exprs[name] = names.resolve(con.expr, {}, deps)
            scope.deps[name] = deps
        for t in scope.tables.values():
            for band in t.bands:
                names.resolve(band.expr, {t.param: "param"}, set())
        for h in scope.helpers.values():
            names.resolve(h.expr, {p: "param" for p in h.params}, set(), (h.name,))
        for inp in scope.inputs.values():
            _check_type_names(c, scope, inp, names)
        for rec in scope.records.values():
            for f in rec.fields:
                _check_type_names(c, scope, f, names)
        for g in scope.grades.values():
            if g.name not in scope.definitions:
                c.sink.report("E200", g.span, f"grade {g.name}: there is no definition named {g.name}{_suggest(g.name, scope.definitions)}")
        # unused: inputs, params, tables, helpers, records nobody refers to
        used = names.used | {n for deps in scope.deps.values() for n in deps}
        used_records = {i.type.record for i in scope.inputs.values() if i.type.kind == "list"}
        for table, what in ((scope.inputs, "input"), (scope.params, "param"), (scope.tables, "table"), (scope.helpers, "helper")):
            for n, item in table.items():
                if n not in used:
                    c.sink.report("W202", item.span, f"{what} {n} is never used")
        for n, rec in scope.records.items():
            if n not in used_records:
                c.sink.report("W202", rec.span, f"record {n} is never used")


def _check_type_names(c: Compilation, scope: KindScope, decl: ast.InputDecl, names: _Names) -> None:
    spec = decl.type
    if spec.kind == "list" and spec.record not in scope.records:
        c.sink.report("E200", spec.span, f"unknown record {spec.record}{_suggest(spec.record, scope.records)}")
    for b in (spec.lower, spec.upper):
        if b is not None and b.ref is not None:
            if b.ref in scope.params or b.ref in scope.inputs:
                names.used.add(b.ref)
            else:
                c.sink.report("E200", b.span, f"unknown name {b.ref} in a bound{_suggest(b.ref, list(scope.params) + list(scope.inputs))}")


# ---------------------------------------------------------------- cycles and order


def check_cycles(c: Compilation) -> None:
    for scope in c.scopes.values():
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        reported: set[frozenset] = set()

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    c.sink.report("E203", scope.definitions[name].span, "definitions depend on each other in a circle: " + " → ".join(cycle))
                return
            state[name] = 1
            for dep in sorted(scope.deps.get(name, ())):
                if dep in scope.definitions:
                    visit(dep, path + [name])
            state[name] = 2
            order.append(name)

        for name in scope.definitions:
            visit(name, [])
        scope.order = order


# ---------------------------------------------------------------- types


def check_types(c: Compilation) -> None:
    for scope in c.scopes.values():
        checker = TypeChecker(scope, c.sink)
        for name in scope.order:
            checker.check_definition(name)
        for name in scope.constraints:
            checker.check_constraint(name)
        for d in scope.definitions.values():
            if d.unit and d.unit not in ("count", "decimal", "percent", "share", "points", "number"):
                c.sink.report("E300", d.span, f"unknown unit {d.unit}")
        for inp in scope.inputs.values():
            _check_default(c, inp)
        for rec in scope.records.values():
            for f in rec.fields:
                _check_default(c, f)


def _check_default(c: Compilation, decl: ast.InputDecl) -> None:
    if not decl.has_default:
        return
    t = type_of_spec(decl.type)
    v = decl.default
    ok = (t[0] == "num" and isinstance(v, Decimal)) or (t[0] == "bool" and isinstance(v, bool)) or \
         (t[0] in ("text", "enum") and isinstance(v, str)) or (t[0] == "list" and isinstance(v, list))
    if t[0] == "enum" and ok and v not in t[1]:
        ok = False
    if not ok:
        c.sink.report("E302", decl.span, f"the default of {decl.name} does not fit its type")


# ---------------------------------------------------------------- weights


def check_weights(c: Compilation) -> None:
    for scope in c.scopes.values():
        for name in scope.order:
            body = scope.bodies[name]
            for e in [body.expr] + [l.expr for l in body.lets]:
                for node in walk(e):
                    if isinstance(node, ast.Weighted):
                        total = sum((t.weight for t in node.terms), Decimal(0))
                        if total != 1:
                            parts = " + ".join(format_decimal(t.weight) for t in node.terms)
                            c.sink.report("E400", node.span, f"weights must sum to exactly 1, but {parts} = {format_decimal(total)}")
                        for t in node.terms:
                            if t.weight <= 0:
                                c.sink.report("E400", t.span, f"weight {t.text} must be above 0")


# ---------------------------------------------------------------- band tables and grade scales


def _interval_range(iv: ast.Interval) -> Range:
    return Range(iv.lo, iv.hi, not iv.lo_closed and iv.lo is not None, not iv.hi_closed and iv.hi is not None)


def _coverage_problems(intervals: list[ast.Interval], domain: Range):
    """Gaps and overlaps of the intervals over the domain: (kind, interval_index, text) tuples."""
    problems = []
    for i, iv in enumerate(intervals):
        if _interval_range(iv).is_empty():
            problems.append(("empty", i, f"{iv} contains no value"))
    valid = [(i, iv) for i, iv in enumerate(intervals) if not _interval_range(iv).is_empty()]
    for a in range(len(valid)):
        for b in range(a + 1, len(valid)):
            ra = _interval_range(valid[a][1])
            ib, rb = valid[b][0], _interval_range(valid[b][1])
            both = intersect(intersect(ra, rb), domain)
            if not both.is_empty():
                problems.append(("overlap", ib, f"{valid[b][1]} overlaps {valid[a][1]} on {both}"))
    # test each endpoint and a point inside each stretch between endpoints
    points = sorted({x for _, iv in valid for x in (iv.lo, iv.hi) if x is not None} |
                    {x for x in (domain.lo, domain.hi) if x is not None})
    probes: list[tuple[Range, Decimal]] = []
    if not points:
        points = [Decimal(0)]
    probes.append((Range(None, points[0], False, True), points[0] - 1))
    for i, x in enumerate(points):
        probes.append((Range.point(x), x))
        if i + 1 < len(points):
            probes.append((Range(x, points[i + 1], True, True), (x + points[i + 1]) / 2))
    probes.append((Range(points[-1], None, True, False), points[-1] + 1))
    gaps: list[Range] = []
    for stretch, probe in probes:
        if not _contains(domain, probe) or any(iv.contains(probe) for _, iv in valid):
            continue
        stretch = intersect(stretch, domain)
        if gaps and _adjacent(gaps[-1], stretch):
            gaps[-1] = Range(gaps[-1].lo, stretch.hi, gaps[-1].lo_open, stretch.hi_open)
        else:
            gaps.append(stretch)
    for g in gaps:
        problems.append(("gap", None, f"no band covers {g}"))
    return problems


def _contains(r: Range, x: Decimal) -> bool:
    return not intersect(r, Range.point(x)).is_empty()


def _adjacent(a: Range, b: Range) -> bool:
    return a.hi is not None and b.lo is not None and a.hi == b.lo and not (a.hi_open and b.lo_open)


def check_bands(c: Compilation) -> None:
    for scope in c.scopes.values():
        for t in scope.tables.values():
            spec = t.param_type
            domain = _declared_range(scope, spec)
            for kind, idx, text in _coverage_problems([b.interval for b in t.bands], domain):
                span = t.bands[idx].span if idx is not None else t.span
                code = {"gap": "E401", "overlap": "E402", "empty": "E405"}[kind]
                c.sink.report(code, span, f"table {t.name} over {domain}: {text}")
        for g in scope.grades.values():
            if g.name not in scope.definitions:
                continue
            d = scope.definitions[g.name]
            computed = scope.ranges.get(g.name, UNBOUNDED)  # check_ranges runs first
            domain = Range(d.minimum if d.minimum is not None else computed.lo,
                           d.maximum if d.maximum is not None else computed.hi)
            seen = set()
            for band in g.bands:
                if band.name in seen:
                    c.sink.report("E201", band.span, f"grade {g.name} has two bands named {band.name}")
                seen.add(band.name)
            for kind, idx, text in _coverage_problems([b.interval for b in g.bands], domain):
                span = g.bands[idx].span if idx is not None else g.span
                code = {"gap": "E403", "overlap": "E404", "empty": "E405"}[kind]
                c.sink.report(code, span, f"grade {g.name} over {domain}: {text}")


def _declared_range(scope: KindScope, spec: ast.TypeSpec) -> Range:
    if spec.kind != "number":
        return UNBOUNDED
    lo, hi = bound_value(scope, spec.lower), bound_value(scope, spec.upper)
    return bounded_range(spec.unit, lo, hi, bool(spec.lower and spec.lower.open), bool(spec.upper and spec.upper.open))


# ---------------------------------------------------------------- ranges


def check_ranges(c: Compilation) -> None:
    for scope in c.scopes.values():
        # inputs, record fields and params
        for name, p in scope.params.items():
            scope.ranges[name] = Range.point(p.value)
        for decl in list(scope.inputs.values()) + [f for r in scope.records.values() for f in r.fields]:
            spec = decl.type
            if spec.kind != "number":
                continue
            r = _declared_range(scope, spec)
            if spec.unit == "percent" and not _within(r, Range(Decimal(0), Decimal(100))) or \
               spec.unit == "share" and not _within(r, Range(Decimal(0), Decimal(1))):
                c.sink.report("E503", spec.span, f"{decl.name}: a {spec.unit} lies in {bounded_range(spec.unit, None, None)}, not {r}")
            if r.is_empty():
                c.sink.report("E503", spec.span, f"{decl.name}: the bounds {r} admit no value")
            owner = next((rec.name for rec in scope.records.values() if decl in rec.fields), None)
            key = f"{owner}.{decl.name}" if owner else decl.name
            if spec.upper is not None and spec.upper.ref in scope.inputs:
                ref_range = _declared_range(scope, scope.inputs[spec.upper.ref].type)
                r = Range(r.lo, ref_range.hi, r.lo_open, ref_range.hi_open)
                if not owner:
                    scope.facts.add((decl.name, spec.upper.ref))
            scope.ranges[key] = r
        for name, expr in scope.constraint_exprs.items():
            if isinstance(expr, ast.Binary) and expr.op in ("<=", "<"):
                scope.facts.add((format_expr(expr.left), format_expr(expr.right)))
            elif isinstance(expr, ast.Binary) and expr.op in (">=", ">"):
                scope.facts.add((format_expr(expr.right), format_expr(expr.left)))

        reported_divisions: set = set()

        def on_division(node, divisor: Range):
            key = (node.span.file, node.span.line, node.span.column)
            if key not in reported_divisions:
                reported_divisions.add(key)
                c.sink.report("E502", node.right.span,
                              f"{format_expr(node.right)} can be zero (it lies in {divisor}); guard it with ratio(a, b, zero: …) or a `when`")

        analysis = RangeAnalysis(scope, on_division)
        for name in scope.order:
            d = scope.definitions[name]
            body = scope.bodies[name]
            env: dict[str, Range] = {}
            for let in body.lets:
                env[let.name] = analysis.value(let.expr, env)
            r = analysis.value(body.expr, env)
            if d.rounding:
                from .ranges import rounded
                r = rounded(r, *d.rounding)
            scope.ranges[name] = r
            if d.maximum is not None and (r.hi is None or r.hi > d.maximum):
                c.sink.report("E500", body.expr.span,
                              f"{d.kind} {name} can reach {'any value' if r.hi is None else r.hi.normalize()}"
                              f" (range {r}), above its maximum {format_decimal(d.maximum)}")
            minimum = d.minimum if d.minimum is not None else (Decimal(0) if d.kind in SCORING_KINDS else None)
            if minimum is not None and (r.lo is None or r.lo < minimum):
                c.sink.report("W501", body.expr.span,
                              f"{d.kind} {name} can fall to {'any negative value' if r.lo is None else str(r).split(',')[0].strip('[(')}"
                              f" (range {r}), below {'its minimum' if d.minimum is not None else 'zero'} {format_decimal(minimum)}")
        for name, expr in scope.constraint_exprs.items():
            analysis.value(expr, {})


def _within(inner: Range, outer: Range) -> bool:
    return intersect(inner, outer) == inner


# ---------------------------------------------------------------- tests


def check_tests(c: Compilation) -> None:
    for t in c.tests:
        kind = t.subject_kind or (c.subjects[0] if c.subjects else None)
        if t.subject_kind and t.subject_kind not in c.subjects:
            c.sink.report("E800", t.span, f"test {t.name!r} is for {t.subject_kind}, not a subject of this version")
            continue
        scope = c.scopes.get(kind)
        if scope is None:
            continue
        for g in t.givens:
            if g.name not in scope.inputs and g.name not in scope.definitions:
                c.sink.report("E800", g.span, f"test {t.name!r} gives {g.name}, which is neither an input nor a value"
                              f"{_suggest(g.name, scope.global_names())}")
        for e in t.expects:
            if e.kind == "value" and e.name not in scope.definitions:
                c.sink.report("E800", e.span, f"test {t.name!r} expects {e.name}, which is not a value of this version"
                              f"{_suggest(e.name, scope.definitions)}")
            if e.kind == "grade":
                g = scope.grades.get(e.name)
                if g is None:
                    c.sink.report("E800", e.span, f"test {t.name!r} expects a grade of {e.name}, which has no grade scale")
                elif e.value not in {b.name for b in g.bands}:
                    c.sink.report("E800", e.span, f"grade {e.name} has no band {e.value}; its bands are {', '.join(b.name for b in g.bands)}")
        if not t.expects:
            c.sink.report("E800", t.span, f"test {t.name!r} expects nothing")
