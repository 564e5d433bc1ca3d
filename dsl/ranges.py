"""Range analysis: the interval every value can take, from the input bounds.

Interval arithmetic over exact decimals, with ``None`` for an infinite end. ``when`` branches are
analysed under the conditions that lead to them (``t <= 0.06`` narrows ``t`` in the first branch and
``t > 0.06`` in the rest), and a division ``a / b`` is known to lie in [0, 1] when a bound or a
constraint says ``a <= b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import ast
from .decimals import CONTEXT, format_decimal, round_decimal
from .printer import format_expr

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True)
class Range:
    lo: Decimal | None = None
    hi: Decimal | None = None
    lo_open: bool = False
    hi_open: bool = False

    @staticmethod
    def point(x: Decimal) -> "Range":
        return Range(x, x)

    def contains_zero(self) -> bool:
        if self.lo is not None and (self.lo > 0 or (self.lo == 0 and self.lo_open)):
            return False
        if self.hi is not None and (self.hi < 0 or (self.hi == 0 and self.hi_open)):
            return False
        return True

    def is_empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else format_decimal(_tidy(self.lo))
        hi = "inf" if self.hi is None else format_decimal(_tidy(self.hi))
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"


UNBOUNDED = Range()


def _tidy(d: Decimal) -> Decimal:
    """Short enough to read in a message."""
    q = d.quantize(Decimal("0.0001"), context=CONTEXT) if abs(d) < Decimal("1e20") else d
    return q.normalize(context=CONTEXT) if q == q.to_integral_value() else q


def _min_end(a, b):
    return None if a is None or b is None else min(a, b)


def _max_end(a, b):
    return None if a is None or b is None else max(a, b)


def union(a: Range, b: Range) -> Range:
    if a.is_empty():
        return b
    if b.is_empty():
        return a
    lo = _min_end(a.lo, b.lo)
    hi = _max_end(a.hi, b.hi)
    lo_open = lo is not None and all(r.lo_open for r in (a, b) if r.lo == lo)
    hi_open = hi is not None and all(r.hi_open for r in (a, b) if r.hi == hi)
    return Range(lo, hi, lo_open, hi_open)


def intersect(a: Range, b: Range) -> Range:
    if a.lo is None or (b.lo is not None and b.lo > a.lo):
        lo, lo_open = b.lo, b.lo_open
    elif b.lo is not None and b.lo == a.lo:
        lo, lo_open = a.lo, a.lo_open or b.lo_open
    else:
        lo, lo_open = a.lo, a.lo_open
    if a.hi is None or (b.hi is not None and b.hi < a.hi):
        hi, hi_open = b.hi, b.hi_open
    elif b.hi is not None and b.hi == a.hi:
        hi, hi_open = a.hi, a.hi_open or b.hi_open
    else:
        hi, hi_open = a.hi, a.hi_open
    return Range(lo, hi, lo_open, hi_open)


def add(a: Range, b: Range) -> Range:
    lo = None if a.lo is None or b.lo is None else CONTEXT.add(a.lo, b.lo)
    hi = None if a.hi is None or b.hi is None else CONTEXT.add(a.hi, b.hi)
    return Range(lo, hi, lo is not None and (a.lo_open or b.lo_open), hi is not None and (a.hi_open or b.hi_open))


def neg(a: Range) -> Range:
    return Range(None if a.hi is None else -a.hi, None if a.lo is None else -a.lo, a.hi_open, a.lo_open)


def sub(a: Range, b: Range) -> Range:
    return add(a, neg(b))


INF = Decimal("Infinity")


def _ext(r: Range) -> tuple[Decimal, Decimal]:
    """The range's ends as extended reals (Decimal infinities)."""
    return (-INF if r.lo is None else r.lo, INF if r.hi is None else r.hi)


def _from_ext(lo: Decimal, hi: Decimal, lo_open: bool, hi_open: bool) -> Range:
    return Range(None if lo.is_infinite() else lo, None if hi.is_infinite() else hi,
                 lo_open and not lo.is_infinite(), hi_open and not hi.is_infinite())


def _times(x: Decimal, y: Decimal) -> Decimal:
    if x == 0 or y == 0:  # 0 · ∞ is 0 here: a zero factor is exactly zero
        return Decimal(0)
    return CONTEXT.multiply(x, y)


def mul_exact(a: Range, b: Range) -> Range:
    (alo, ahi), (blo, bhi) = _ext(a), _ext(b)
    products = [(_times(x, y), xo or yo) for x, xo in ((alo, a.lo_open), (ahi, a.hi_open))
                for y, yo in ((blo, b.lo_open), (bhi, b.hi_open))]
    lo = min(v for v, _ in products)
    hi = max(v for v, _ in products)
    return _from_ext(lo, hi, all(o for v, o in products if v == lo), all(o for v, o in products if v == hi))


def div(a: Range, b: Range) -> Range:
    if b.contains_zero():
        return UNBOUNDED
    blo, bhi = _ext(b)
    # 1/b for a divisor that keeps one sign; 1/±∞ is 0 and 1/0 (an open end at zero) is ±∞
    inv_lo = Decimal(0) if bhi.is_infinite() else (INF if bhi == 0 else CONTEXT.divide(1, bhi))
    inv_hi = Decimal(0) if blo.is_infinite() else (INF if blo == 0 else CONTEXT.divide(1, blo))
    if blo < 0 and bhi <= 0:
        inv_lo, inv_hi = -INF if bhi == 0 else inv_lo, inv_hi
    return mul_exact(a, _from_ext(min(inv_lo, inv_hi), max(inv_lo, inv_hi), b.hi is None, b.lo is None))


def rounded(r: Range, places: int, mode: str) -> Range:
    return Range(None if r.lo is None else round_decimal(r.lo, places, mode),
                 None if r.hi is None else round_decimal(r.hi, places, mode))


def narrow(r: Range, op: str, c: Decimal) -> Range:
    """The part of r where ``x op c`` holds."""
    if op == "<=":
        return intersect(r, Range(None, c))
    if op == "<":
        return intersect(r, Range(None, c, False, True))
    if op == ">=":
        return intersect(r, Range(c, None))
    if op == ">":
        return intersect(r, Range(c, None, True, False))
    if op == "==":
        return intersect(r, Range(c, c))
    if op == "!=":
        if r.lo is not None and r.lo == c:
            return Range(r.lo, r.hi, True, r.hi_open)
        if r.hi is not None and r.hi == c:
            return Range(r.lo, r.hi, r.lo_open, True)
    return r


NEGATE = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!=", "!=": "=="}
FLIP = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "==", "!=": "!="}


class RangeAnalysis:
    """Computes ranges for a scope. ``on_division(expr, divisor_range)`` reports unguarded zero divisors."""

    def __init__(self, scope, on_division=None):
        self.scope = scope
        self.on_division = on_division
        self.constant: dict[str, Decimal] = {n: p.value for n, p in scope.params.items()}

    def value(self, e, env: dict) -> Range:  # noqa: C901 - one case per node type
        if isinstance(e, ast.Num):
            return Range.point(e.value)
        if isinstance(e, ast.BoolLit):
            return UNBOUNDED
        if isinstance(e, ast.Ref):
            if e.name in env:
                return env[e.name]
            return self.scope.ranges.get(e.name, UNBOUNDED)
        if isinstance(e, ast.FieldRef):
            return env.get(f"{e.var}.{e.field}", UNBOUNDED)
        if isinstance(e, ast.Unary):
            return neg(self.value(e.operand, env)) if e.op == "-" else UNBOUNDED
        if isinstance(e, ast.Binary):
            if e.op in ("+", "-", "*", "/"):
                a, b = self.value(e.left, env), self.value(e.right, env)
                if e.op == "+":
                    return add(a, b)
                if e.op == "-":
                    return sub(a, b)
                if e.op == "*":
                    return mul_exact(a, b)
                if b.contains_zero() and self.on_division:
                    self.on_division(e, b)
                return self._division(e.left, e.right, a, b)
            self.value(e.left, env)
            self.value(e.right, env)
            return UNBOUNDED
        if isinstance(e, ast.Call):
            return self._call(e, env)
        if isinstance(e, ast.When):
            return self._when(e, env)
        if isinstance(e, ast.Aggregate):
            return self._aggregate(e, env)
        if isinstance(e, ast.Weighted):
            total = Range.point(ZERO)
            for t in e.terms:
                total = add(total, mul_exact(Range.point(t.weight), self.value(t.expr, env)))
            return total
        if isinstance(e, ast.Round):
            return rounded(self.value(e.expr, env), e.places, e.mode)
        return UNBOUNDED

    def _division(self, num_e, den_e, a: Range, b: Range) -> Range:
        if (self._key(num_e), self._key(den_e)) in self.scope.facts and a.lo is not None and a.lo >= 0:
            return Range(ZERO, ONE)
        return div(a, b)

    @staticmethod
    def _key(e) -> str:
        return format_expr(e)

    def _call(self, e: ast.Call, env) -> Range:
        args = [self.value(a, env) for a in e.args]
        if e.func in self.scope.tables:
            t = self.scope.tables[e.func]
            out = None
            for band in t.bands:
                inner = {t.param: Range(band.interval.lo, band.interval.hi,
                                        not band.interval.lo_closed and band.interval.lo is not None,
                                        not band.interval.hi_closed and band.interval.hi is not None)}
                r = self.value(band.expr, inner)
                out = r if out is None else union(out, r)
            return out or UNBOUNDED
        if e.func == "ratio":
            zero = self.value(e.named["zero"], env) if "zero" in e.named else Range.point(ZERO)
            a, b = args
            nonzero = narrow(b, "!=", ZERO)
            return union(self._division(e.args[0], e.args[1], a, nonzero), zero)
        if e.func == "min":
            lo = args[0]
            for r in args[1:]:
                lo = Range(None if lo.lo is None or r.lo is None else min(lo.lo, r.lo),
                           lo.hi if r.hi is None else r.hi if lo.hi is None else min(lo.hi, r.hi))
            return lo
        if e.func == "max":
            hi = args[0]
            for r in args[1:]:
                hi = Range(hi.lo if r.lo is None else r.lo if hi.lo is None else max(hi.lo, r.lo),
                           None if hi.hi is None or r.hi is None else max(hi.hi, r.hi))
            return hi
        if e.func == "clamp":
            x, lo, hi = args
            low = x.lo if lo.lo is None else (lo.lo if x.lo is None else max(x.lo, lo.lo))
            high = x.hi if hi.hi is None else (hi.hi if x.hi is None else min(x.hi, hi.hi))
            return Range(low if lo.lo is not None or x.lo is not None else None, high)
        if e.func == "abs":
            r = args[0]
            if r.lo is not None and r.lo >= 0:
                return r
            if r.hi is not None and r.hi <= 0:
                return neg(r)
            hi = None if r.lo is None or r.hi is None else max(-r.lo, r.hi)
            return Range(ZERO, hi)
        return UNBOUNDED

    def _condition_facts(self, cond) -> tuple[str, str, Decimal] | None:
        """``name op constant`` (either way round), or None."""
        if not isinstance(cond, ast.Binary) or cond.op not in NEGATE:
            return None
        left, right = cond.left, cond.right
        lc, rc = self._const(left), self._const(right)
        if isinstance(left, ast.Ref) and rc is not None:
            return (left.name, cond.op, rc)
        if isinstance(right, ast.Ref) and lc is not None:
            return (right.name, FLIP[cond.op], lc)
        return None

    def _const(self, e) -> Decimal | None:
        if isinstance(e, ast.Num):
            return e.value
        if isinstance(e, ast.Ref) and e.name in self.constant:
            return self.constant[e.name]
        return None

    def _when(self, e: ast.When, env) -> Range:
        out = None
        rest = dict(env)  # what holds once every earlier condition failed
        for cond, value in e.branches:
            self.value(cond, rest)
            fact = self._condition_facts(cond)
            here = dict(rest)
            if fact:
                name, op, c = fact
                current = rest.get(name, self.scope.ranges.get(name, UNBOUNDED))
                here[name] = narrow(current, op, c)
                rest[name] = narrow(current, NEGATE[op], c)
                if here[name].is_empty():
                    continue  # this branch can never be taken
            r = self.value(value, here)
            out = r if out is None else union(out, r)
            if fact and rest[fact[0]].is_empty():
                return out
        r = self.value(e.otherwise, rest)
        return r if out is None else union(out, r)

    def _aggregate(self, e: ast.Aggregate, env) -> Range:
        inner = dict(env)
        source = e.source
        record = None
        if isinstance(source, ast.Ref) and source.name in self.scope.inputs:
            spec = self.scope.inputs[source.name].type
            record = self.scope.records.get(spec.record)
        if record is not None:
            for f in record.fields:
                inner[f"{e.var}.{f.name}"] = self.scope.ranges.get(f"{record.name}.{f.name}", UNBOUNDED)
        if e.where is not None:
            self.value(e.where, inner)
        if e.func == "count":
            return Range(ZERO, None)
        body = self.value(e.body, inner) if e.body is not None else UNBOUNDED
        if e.func == "sum":
            lo = None if body.lo is None or body.lo < 0 else ZERO
            hi = None if body.hi is None or body.hi > 0 else ZERO
            return Range(lo, hi)
        return Range(body.lo, body.hi)  # mean, min, max stay within the items' range


def bounded_range(unit: str, lower: Decimal | None, upper: Decimal | None, lower_open=False, upper_open=False) -> Range:
    """An input's range: its declared bounds, else the natural range of its unit."""
    natural = {"count": Range(ZERO, None), "percent": Range(ZERO, Decimal(100)), "share": Range(ZERO, ONE),
               "points": Range(ZERO, None)}.get(unit, UNBOUNDED)
    lo, lo_open = (lower, lower_open) if lower is not None else (natural.lo, natural.lo_open)
    hi, hi_open = (upper, upper_open) if upper is not None else (natural.hi, natural.hi_open)
    return Range(lo, hi, lo_open and lo is not None, hi_open and hi is not None)
