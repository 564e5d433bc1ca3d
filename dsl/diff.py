"""Semantic diff of two compiled methodology versions: what changed in meaning, by name, not by text.

``diff_versions(old, new)`` compares two ``CompiledVersion``s (an amendment and its base, two
versions written independently, even two methodologies) scope by scope (one scope per subject
kind) and returns a ``DiffResult``: a flat list of ``Change``s, each naming the thing that changed,
the field, the old and new value as normalised text (numbers exactly as decimals), the subject kinds
it applies to and the source lines in both files.

Formulas are compared after helpers are expanded (``scope.bodies``) and printed in one normal form
(``dsl.printer.format_expr``), so spacing, comments and redundant parentheses never show up as
changes. When a formula changed, the old and new expression trees are aligned node by node and the
numeric literals that differ are reported one by one (``constant``: 0.08 → 0.09 in ``t >= 0.08``), as
are the weights of ``weighted(...)`` terms (``weight``).

Everything here is a pure function of the two models; renderers live in ``dsl.report`` and the CLI in
``dsl.diffcli``. A gRPC adapter calls ``diff_versions`` and sends ``DiffResult.to_json()`` (or walks
``DiffResult.changes``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

from . import ast
from .decimals import format_decimal
from .diagnostics import Span
from .model import DEFAULT_UNITS, KindScope, VersionModel
from .printer import format_expr

OPS = ("added", "removed", "changed")
LANGS = ("kk", "ru", "en")

# the order things are listed in: metadata first, then what a subject supplies, then what is computed
DEFINITION_KINDS = ("indicator", "criterion", "direction", "score", "bonus", "penalty", "coefficient", "value")


# ---------------------------------------------------------------- result types


@dataclass(frozen=True)
class SourceRef:
    """Where something is written: file and 1-based lines (``end_line`` inclusive)."""

    file: str
    line: int
    end_line: int = 0

    @classmethod
    def of(cls, span: Span | None) -> "SourceRef | None":
        if span is None or span.line <= 0:
            return None
        return cls(span.file, span.line, max(span.end_line, span.line))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "end_line": self.end_line or self.line}


@dataclass
class Change:
    """One semantic change.

    name   the definition or declaration (``net_turnover``); for metadata the header field (``title``)
    thing  what it is: metadata, input, record, param, indicator, criterion, direction, score, bonus,
           penalty, coefficient, value, table, grade, constraint, helper
    op     added, removed or changed
    field  what changed: "" for a whole thing added or removed; otherwise one of kind, unit, min, max,
           rounding, formula, constant, weight, weight term, label, type, bounds, optional, default,
           value, unstated, field, param, band, band label, order, params, and for metadata the
           header field itself (title, basis, status, effective_from, effective_to, subjects, …)
    part   which part of it: the language of a label, the band of a table or grade scale, the term of
           a weighted sum, the place of a constant in the formula, the field of a record
    old, new  normalised text (numbers as exact decimals), None when absent
    kinds  the subject kinds the change applies to (a ``for local { }`` change names only ``local``)
    """

    name: str
    thing: str
    op: str
    field: str
    old: str | None
    new: str | None
    kinds: list[str]
    old_source: SourceRef | None = None
    new_source: SourceRef | None = None
    part: str = ""
    note: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # the thing's labels (new version's, else old's)

    @property
    def key(self) -> tuple:
        return (self.thing, self.name, self.op, self.field, self.part, self.old, self.new,
                self.old_source, self.new_source)

    def describe(self) -> str:
        """One line: ``changed max of indicator x: 10 → 20``."""
        what = self.field + (f" [{self.part}]" if self.part else "")
        if self.op == "changed":
            return f"{what}: {self.old} → {self.new}"
        if self.field:
            return f"{what} {self.op}: {self.new if self.op == 'added' else self.old}"
        return f"{self.thing} {self.op}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "thing": self.thing,
            "op": self.op,
            "field": self.field,
            "part": self.part,
            "old": self.old,
            "new": self.new,
            "kinds": list(self.kinds),
            "old_source": self.old_source.to_json() if self.old_source else None,
            "new_source": self.new_source.to_json() if self.new_source else None,
            "note": self.note,
            "labels": dict(self.labels),
        }


@dataclass
class VersionInfo:
    key: str
    methodology: str
    version: str
    title: dict[str, str]
    status: str
    basis: str
    effective_from: str | None
    effective_to: str | None
    subjects: list[str]
    extends: str | None
    path: str
    content_hash: str

    @classmethod
    def of(cls, model: VersionModel) -> "VersionInfo":
        return cls(model.key, model.methodology, model.version, dict(model.title), model.status, model.basis,
                   model.effective_from.isoformat() if model.effective_from else None,
                   model.effective_to.isoformat() if model.effective_to else None,
                   list(model.subjects), model.extends, model.path, model.content_hash)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DiffResult:
    old: VersionInfo
    new: VersionInfo
    changes: list[Change]
    sources: dict[str, str] = field(default_factory=dict)  # file -> text, for side-by-side views

    def counts(self) -> dict[str, int]:
        out = {op: 0 for op in OPS}
        for c in self.changes:
            out[c.op] += 1
        return out

    def groups(self) -> list[tuple[tuple[str, str], list[Change]]]:
        """Changes grouped by thing (``(thing, name)``; all metadata as ``("metadata", "")``), in listing order."""
        out: dict[tuple[str, str], list[Change]] = {}
        for c in self.changes:
            out.setdefault((c.thing, "" if c.thing == "metadata" else c.name), []).append(c)
        return list(out.items())

    def find(self, name: str | None = None, field: str | None = None, **kw) -> list[Change]:
        """Changes matching every given attribute (tests and adapters)."""
        out = []
        for c in self.changes:
            if name is not None and c.name != name:
                continue
            if field is not None and c.field != field:
                continue
            if all(getattr(c, k) == v for k, v in kw.items()):
                out.append(c)
        return out

    def to_json(self) -> dict:
        return {"old": self.old.to_json(), "new": self.new.to_json(), "counts": self.counts(),
                "changes": [c.to_json() for c in self.changes]}


# ---------------------------------------------------------------- normal forms


def fmt_num(d: Decimal | None) -> str | None:
    return None if d is None else format_decimal(d)


def fmt_bound(b: ast.Bound | None) -> str:
    if b is None:
        return ""
    return b.ref if b.ref is not None else format_decimal(b.value)


def fmt_bounds(t: ast.TypeSpec) -> str:
    lo, hi = t.lower, t.upper
    if lo is not None and hi is not None:
        if not lo.open and not hi.open:
            return f"{fmt_bound(lo)}..{fmt_bound(hi)}"
        return f"{'>' if lo.open else '>='} {fmt_bound(lo)}, {'<' if hi.open else '<='} {fmt_bound(hi)}"
    if lo is not None:
        return f"{'>' if lo.open else '>='} {fmt_bound(lo)}"
    if hi is not None:
        return f"{'<' if hi.open else '<='} {fmt_bound(hi)}"
    return ""


def fmt_type(t: ast.TypeSpec) -> str:
    if t.kind == "number":
        return t.unit
    if t.kind == "enum":
        return f"enum({', '.join(t.choices)})"
    if t.kind == "list":
        return f"list of {t.record}"
    return t.kind


def fmt_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format_decimal(v)
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(fmt_literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt_literal(x)}" for k, x in v.items()) + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def fmt_input(d: ast.InputDecl) -> str:
    """``name : unit bounds [optional] [default v]`` — a declaration without its labels."""
    text = f"{d.name} : {fmt_type(d.type)}"
    b = fmt_bounds(d.type)
    if b:
        text += " " + b
    if d.optional:
        text += " optional"
    if d.has_default:
        text += " default " + fmt_literal(d.default)
    return text


def fmt_rounding(r: tuple[int, str] | None) -> str | None:
    return None if r is None else f"round {r[0]} {r[1]}"


def fmt_body(lets: list[ast.LetStmt], expr: ast.Expr) -> str:
    """A formula in normal form: ``let t = …; result``."""
    return "; ".join([f"let {let.name} = {format_expr(let.expr)}" for let in lets] + [format_expr(expr)])


def fmt_definition(scope: KindScope, name: str) -> str:
    d = scope.definitions[name]
    body = scope.bodies.get(name)
    head = f"{d.kind} {name}"
    if d.unit:
        head += f" : {d.unit}"
    if d.minimum is not None:
        head += f" min {format_decimal(d.minimum)}"
    if d.maximum is not None:
        head += f" max {format_decimal(d.maximum)}"
    formula = fmt_body(body.lets, body.expr) if body else format_expr(d.expr)
    text = f"{head} = {formula}"
    if d.rounding:
        text += " " + fmt_rounding(d.rounding)
    return text


def fmt_interval(i: ast.Interval) -> str:
    return str(i)


def fmt_table(t: ast.TableDecl) -> str:
    return f"table {t.name}({t.param}: {fmt_type(t.param_type)}) {{ " + \
        "  ".join(f"{fmt_interval(b.interval)} -> {format_expr(b.expr)}" for b in t.bands) + " }"


def fmt_grade(g: ast.GradeDecl) -> str:
    return f"grade {g.name} {{ " + "  ".join(f"{b.name} {fmt_interval(b.interval)}" for b in g.bands) + " }"


def fmt_record(r: ast.RecordDecl) -> str:
    return f"record {r.name} {{ " + "; ".join(fmt_input(f) for f in r.fields) + " }"


def fmt_param(p: ast.ParamDecl) -> str:
    text = f"param {p.name}"
    if p.unit and p.unit != "number":
        text += f" : {p.unit}"
    text += f" = {format_decimal(p.value)}"
    if p.unstated:
        text += " unstated"
    return text


# ---------------------------------------------------------------- expression alignment


@dataclass
class _Diff:
    """What aligning two expression trees found."""

    constants: list[tuple[ast.Num, ast.Num, str]] = field(default_factory=list)  # old, new, context
    weights: list[tuple[ast.WeightTerm, ast.WeightTerm]] = field(default_factory=list)
    terms_removed: list[ast.WeightTerm] = field(default_factory=list)
    terms_added: list[ast.WeightTerm] = field(default_factory=list)
    structural: bool = False  # some part differs in shape, not only in numbers


def _same_head(a, b) -> bool:
    """Same node type and same operator/name, so that children can be paired."""
    if type(a) is not type(b):
        return False
    if isinstance(a, ast.Num):
        return True
    if isinstance(a, ast.BoolLit):
        return a.value == b.value
    if isinstance(a, ast.Ref):
        return a.name == b.name
    if isinstance(a, ast.FieldRef):
        return (a.var, a.field) == (b.var, b.field)
    if isinstance(a, ast.Unary):
        return a.op == b.op
    if isinstance(a, ast.Binary):
        return a.op == b.op
    if isinstance(a, ast.Call):
        return a.func == b.func and len(a.args) == len(b.args) and set(a.named) == set(b.named)
    if isinstance(a, ast.When):
        return len(a.branches) == len(b.branches)
    if isinstance(a, ast.Aggregate):
        return a.func == b.func and a.var == b.var and (a.where is None) == (b.where is None) and (a.body is None) == (b.body is None)
    if isinstance(a, ast.Round):
        return a.places == b.places and a.mode == b.mode
    if isinstance(a, ast.Weighted):
        return True
    return False


_CONTEXT_LIMIT = 72


def align(a: ast.Expr, b: ast.Expr, out: _Diff | None = None, context: ast.Expr | None = None) -> _Diff:
    """Walk two expression trees in step; record differing numbers, weights and shape differences.

    ``context`` is the piece of the old formula a differing constant is reported in: a ``when``
    condition or value, a ``let``, a function call, or the smallest enclosing piece short enough
    to read (``t >= 0.08``, ``10 * (0.08 - t) / 0.03``).
    """
    out = out if out is not None else _Diff()
    if not _same_head(a, b):
        out.structural = True
        return out
    if isinstance(a, ast.Num):
        if a.value != b.value:
            out.constants.append((a, b, format_expr(context if context is not None else a)))
        return out
    if isinstance(a, ast.Weighted):
        _align_weighted(a, b, out)
        return out
    # children are reported in the given context while it is short, else in this node
    ctx = context if context is not None and len(format_expr(context)) <= _CONTEXT_LIMIT else a
    if isinstance(a, ast.Unary):
        align(a.operand, b.operand, out, ctx)
    elif isinstance(a, ast.Binary):
        align(a.left, b.left, out, ctx)
        align(a.right, b.right, out, ctx)
    elif isinstance(a, ast.Call):
        for x, y in zip(a.args, b.args):
            align(x, y, out, ctx)
        for k in a.named:
            align(a.named[k], b.named[k], out, ctx)
    elif isinstance(a, ast.When):
        for (ca, va), (cb, vb) in zip(a.branches, b.branches):
            align(ca, cb, out, ca)
            align(va, vb, out, va)
        align(a.otherwise, b.otherwise, out, a.otherwise)
    elif isinstance(a, ast.Aggregate):
        for x, y in ((a.source, b.source), (a.where, b.where), (a.body, b.body)):
            if x is not None and y is not None:
                align(x, y, out, ctx)
    elif isinstance(a, ast.Round):
        align(a.expr, b.expr, out, ctx)
    return out


def _align_weighted(a: ast.Weighted, b: ast.Weighted, out: _Diff) -> None:
    """Pair terms by their expression (normal form); what is left unpaired was added or removed."""
    new_terms = {}
    for t in b.terms:
        new_terms.setdefault(format_expr(t.expr), []).append(t)
    unmatched_old = []
    for t in a.terms:
        key = format_expr(t.expr)
        if new_terms.get(key):
            u = new_terms[key].pop(0)
            if t.weight != u.weight:
                out.weights.append((t, u))
        else:
            unmatched_old.append(t)
    unmatched_new = [t for ts in new_terms.values() for t in ts]
    unmatched_new.sort(key=lambda t: b.terms.index(t))
    # same number of unmatched terms in the same places: the terms changed inside, pair them up
    if unmatched_old and len(unmatched_old) == len(unmatched_new):
        for t, u in zip(unmatched_old, unmatched_new):
            before = len(out.constants)
            align(t.expr, u.expr, out, t.expr)
            if t.weight != u.weight:
                out.weights.append((t, u))
            if len(out.constants) == before:
                out.structural = True
        return
    if unmatched_old or unmatched_new:
        out.structural = True
    out.terms_removed.extend(unmatched_old)
    out.terms_added.extend(unmatched_new)


# ---------------------------------------------------------------- comparing one scope


class _ScopeDiff:
    """The changes between two scopes of one subject kind (either may be missing)."""

    def __init__(self, kind: str, old: KindScope | None, new: KindScope | None):
        self.kind = kind
        self.old = old or KindScope(kind)
        self.new = new or KindScope(kind)
        self.out: list[Change] = []

    def add(self, name, thing, op, fld, old, new, old_span=None, new_span=None, part="", note="", labels=None):
        self.out.append(Change(name, thing, op, fld, old, new, [self.kind], SourceRef.of(old_span),
                               SourceRef.of(new_span), part, note, dict(labels or {})))

    def run(self) -> list[Change]:
        self.inputs()
        self.records()
        self.params()
        self.definitions()
        self.tables()
        self.grades()
        self.constraints()
        self.helpers()
        return self.out

    # -- shared
    def labels(self, name, thing, a: dict, b: dict, sa, sb, fld="label", part_prefix="", labels=None):
        for lang in list(LANGS) + sorted((set(a) | set(b)) - set(LANGS)):
            x, y = a.get(lang), b.get(lang)
            if x == y:
                continue
            part = f"{part_prefix}{lang}"
            op = "added" if x is None else "removed" if y is None else "changed"
            self.add(name, thing, op, fld, x, y, sa, sb, part=part, labels=labels if labels is not None else (b or a))

    def whole(self, table_old: dict, table_new: dict, thing_of, text_of, span_of=lambda x: x.span, labels_of=lambda x: getattr(x, "labels", {})):
        """Added and removed things; returns the names in both."""
        for n, x in table_old.items():
            if n not in table_new:
                self.add(n, thing_of(x), "removed", "", text_of(x), None, span_of(x), None, labels=labels_of(x))
        for n, y in table_new.items():
            if n not in table_old:
                self.add(n, thing_of(y), "added", "", None, text_of(y), None, span_of(y), labels=labels_of(y))
        return [n for n in table_new if n in table_old]

    # -- inputs and records
    def inputs(self):
        for n in self.whole(self.old.inputs, self.new.inputs, lambda _: "input", fmt_input):
            a, b = self.old.inputs[n], self.new.inputs[n]
            if a is b:
                continue
            self.input_fields(n, "input", a, b, "")

    def input_fields(self, n, thing, a: ast.InputDecl, b: ast.InputDecl, part):
        labels = b.labels or a.labels
        if fmt_type(a.type) != fmt_type(b.type):
            self.add(n, thing, "changed", "type", fmt_type(a.type), fmt_type(b.type), a.span, b.span, part, labels=labels)
        if fmt_bounds(a.type) != fmt_bounds(b.type):
            self.add(n, thing, "changed", "bounds", fmt_bounds(a.type) or None, fmt_bounds(b.type) or None, a.span, b.span,
                     part, labels=labels)
        if a.optional != b.optional:
            self.add(n, thing, "changed", "optional", str(a.optional).lower(), str(b.optional).lower(), a.span, b.span,
                     part, labels=labels)
        da = fmt_literal(a.default) if a.has_default else None
        db = fmt_literal(b.default) if b.has_default else None
        if da != db:
            op = "added" if da is None else "removed" if db is None else "changed"
            self.add(n, thing, op, "default", da, db, a.span, b.span, part, labels=labels)
        self.labels(n, thing, a.labels, b.labels, a.span, b.span, part_prefix=f"{part}." if part else "", labels=labels)

    def records(self):
        for n in self.whole(self.old.records, self.new.records, lambda _: "record", fmt_record):
            a, b = self.old.records[n], self.new.records[n]
            if a is b:
                continue
            self.labels(n, "record", a.labels, b.labels, a.span, b.span)
            fa, fb = {f.name: f for f in a.fields}, {f.name: f for f in b.fields}
            for f in fa:
                if f not in fb:
                    self.add(n, "record", "removed", "field", fmt_input(fa[f]), None, fa[f].span, None, part=f, labels=b.labels)
            for f in fb:
                if f not in fa:
                    self.add(n, "record", "added", "field", None, fmt_input(fb[f]), None, fb[f].span, part=f, labels=b.labels)
                else:
                    self.input_fields(n, "record", fa[f], fb[f], f)

    # -- params
    def params(self):
        for n in self.whole(self.old.params, self.new.params, lambda _: "param", fmt_param):
            a, b = self.old.params[n], self.new.params[n]
            if a is b:
                continue
            if a.value != b.value:
                self.add(n, "param", "changed", "value", format_decimal(a.value), format_decimal(b.value), a.span, b.span, labels=b.labels)
            if (a.unit or "number") != (b.unit or "number"):
                self.add(n, "param", "changed", "unit", a.unit or "number", b.unit or "number", a.span, b.span, labels=b.labels)
            if a.unstated != b.unstated:
                self.add(n, "param", "changed", "unstated", str(a.unstated).lower(), str(b.unstated).lower(), a.span, b.span, labels=b.labels)
            self.labels(n, "param", a.labels, b.labels, a.span, b.span)

    # -- definitions
    def definitions(self):
        old, new = self.old, self.new
        removed = [n for n in old.definitions if n not in new.definitions]
        added = [n for n in new.definitions if n not in old.definitions]
        formula_old = {n: self.formula(old, n) for n in removed}
        formula_new = {n: self.formula(new, n) for n in added}
        for n in removed:
            d = old.definitions[n]
            twin = [m for m in added if formula_new[m] == formula_old[n]]
            note = f"same formula as the added {new.definitions[twin[0]].kind} {twin[0]}: moved or renamed" if twin else ""
            self.add(n, d.kind, "removed", "", fmt_definition(old, n), None, d.span, None, note=note, labels=d.labels)
        for n in added:
            d = new.definitions[n]
            twin = [m for m in removed if formula_old[m] == formula_new[n]]
            note = f"same formula as the removed {old.definitions[twin[0]].kind} {twin[0]}: moved or renamed" if twin else ""
            self.add(n, d.kind, "added", "", None, fmt_definition(new, n), None, d.span, note=note, labels=d.labels)
        for n in new.definitions:
            if n in old.definitions:
                self.definition(n)

    @staticmethod
    def formula(scope: KindScope, n: str) -> str:
        body = scope.bodies.get(n)
        d = scope.definitions[n]
        return fmt_body(body.lets, body.expr) if body else format_expr(d.expr)

    def definition(self, n: str):
        old, new = self.old, self.new
        a, b = old.definitions[n], new.definitions[n]
        thing = b.kind
        labels = b.labels or a.labels
        sa, sb = a.span, b.span
        if a.kind != b.kind:
            self.add(n, thing, "changed", "kind", a.kind, b.kind, sa, sb, labels=labels)
        ua, ub = a.unit or DEFAULT_UNITS[a.kind], b.unit or DEFAULT_UNITS[b.kind]
        if ua != ub:
            self.add(n, thing, "changed", "unit", ua, ub, sa, sb, labels=labels)
        for fld, x, y in (("min", a.minimum, b.minimum), ("max", a.maximum, b.maximum)):
            if x != y or (x is None) != (y is None):
                op = "added" if x is None else "removed" if y is None else "changed"
                self.add(n, thing, op, fld, fmt_num(x), fmt_num(y), sa, sb, labels=labels)
        ra, rb = fmt_rounding(a.rounding), fmt_rounding(b.rounding)
        if ra != rb:
            op = "added" if ra is None else "removed" if rb is None else "changed"
            self.add(n, thing, op, "rounding", ra, rb, sa, sb, labels=labels)
        fa, fb = self.formula(old, n), self.formula(new, n)
        if fa != fb:
            ba, bb = old.bodies[n], new.bodies[n]
            found = _Diff()
            la, lb = {l.name: l for l in ba.lets}, {l.name: l for l in bb.lets}
            if list(la) != list(lb):
                found.structural = True
            for name in la:
                if name in lb:
                    align(la[name].expr, lb[name].expr, found, la[name].expr)
            align(ba.expr, bb.expr, found)
            note = "" if found.structural else "only numbers changed"
            self.add(n, thing, "changed", "formula", fa, fb, sa, sb, note=note, labels=labels)
            self.expression_details(n, thing, found, labels)
        self.labels(n, thing, a.labels, b.labels, sa, sb)

    def expression_details(self, n, thing, found: _Diff, labels):
        for x, y, context in found.constants:
            self.add(n, thing, "changed", "constant", format_decimal(x.value), format_decimal(y.value), x.span, y.span,
                     part=context, labels=labels)
        for t, u in found.weights:
            self.add(n, thing, "changed", "weight", format_decimal(t.weight), format_decimal(u.weight), t.span, u.span,
                     part=format_expr(t.expr), labels=labels)
        for t in found.terms_removed:
            self.add(n, thing, "removed", "weight term", f"{format_decimal(t.weight)} * {format_expr(t.expr)}", None,
                     t.span, None, part=format_expr(t.expr), labels=labels)
        for u in found.terms_added:
            self.add(n, thing, "added", "weight term", None, f"{format_decimal(u.weight)} * {format_expr(u.expr)}",
                     None, u.span, part=format_expr(u.expr), labels=labels)

    # -- band tables, band by band
    def tables(self):
        for n in self.whole(self.old.tables, self.new.tables, lambda _: "table", fmt_table):
            a, b = self.old.tables[n], self.new.tables[n]
            if a is b:
                continue
            labels = b.labels or a.labels
            pa, pb = f"{a.param}: {fmt_type(a.param_type)} {fmt_bounds(a.param_type)}".strip(), \
                f"{b.param}: {fmt_type(b.param_type)} {fmt_bounds(b.param_type)}".strip()
            if pa != pb:
                self.add(n, "table", "changed", "param", pa, pb, a.span, b.span, labels=labels)
            self.labels(n, "table", a.labels, b.labels, a.span, b.span)
            self.bands(n, a, b, labels)

    def bands(self, n, a: ast.TableDecl, b: ast.TableDecl, labels):
        def text(band):
            return format_expr(band.expr)

        pairs: list[tuple[ast.Band | None, ast.Band | None]] = []
        if len(a.bands) == len(b.bands):
            pairs = list(zip(a.bands, b.bands))
        else:  # pair bands with the same interval; the rest were added or removed
            by_interval = {str(x.interval): x for x in b.bands}
            used = set()
            for x in a.bands:
                y = by_interval.get(str(x.interval))
                if y is not None:
                    used.add(id(y))
                pairs.append((x, y))
            pairs += [(None, y) for y in b.bands if id(y) not in used]
        for x, y in pairs:
            if x is None:
                self.add(n, "table", "added", "band", None, f"{y.interval} -> {text(y)}", None, y.span,
                         part=str(y.interval), labels=labels)
            elif y is None:
                self.add(n, "table", "removed", "band", f"{x.interval} -> {text(x)}", None, x.span, None,
                         part=str(x.interval), labels=labels)
            elif str(x.interval) != str(y.interval) or text(x) != text(y):
                found = align(x.expr, y.expr)
                self.add(n, "table", "changed", "band", f"{x.interval} -> {text(x)}", f"{y.interval} -> {text(y)}",
                         x.span, y.span, part=str(x.interval) if str(x.interval) == str(y.interval) else f"{x.interval} → {y.interval}",
                         labels=labels)
                if not found.structural:
                    for c0, c1, ctx in found.constants:
                        self.add(n, "table", "changed", "constant", format_decimal(c0.value), format_decimal(c1.value),
                                 c0.span, c1.span, part=f"band {y.interval}: {ctx}", labels=labels)

    # -- grade scales, band by band (bands are named)
    def grades(self):
        def labels_of(g):
            d = self.new.definitions.get(g.name) or self.old.definitions.get(g.name)
            return d.labels if d is not None else {}

        for n in self.whole(self.old.grades, self.new.grades, lambda _: "grade", fmt_grade, labels_of=labels_of):
            a, b = self.old.grades[n], self.new.grades[n]
            if a is b:
                continue
            labels = labels_of(b)
            ba, bb = {x.name: x for x in a.bands}, {x.name: x for x in b.bands}
            for g, x in ba.items():
                if g not in bb:
                    self.add(n, "grade", "removed", "band", f"{g} {x.interval}", None, x.span, None, part=g, labels=labels)
            for g, y in bb.items():
                if g not in ba:
                    self.add(n, "grade", "added", "band", None, f"{g} {y.interval}", None, y.span, part=g, labels=labels)
                    continue
                x = ba[g]
                if str(x.interval) != str(y.interval):
                    self.add(n, "grade", "changed", "band", str(x.interval), str(y.interval), x.span, y.span, part=g, labels=labels)
                self.labels(n, "grade", x.labels, y.labels, x.span, y.span, fld="band label", part_prefix=f"{g}.", labels=labels)
            common = [g for g in ba if g in bb]
            if common != [g for g in bb if g in ba]:
                self.add(n, "grade", "changed", "order", ", ".join(common), ", ".join(g for g in bb if g in ba),
                         a.span, b.span, labels=labels)

    # -- constraints and helpers
    def constraints(self):
        def text(scope, n):
            return format_expr(scope.constraint_exprs.get(n) or scope.constraints[n].expr)

        for n in self.whole(self.old.constraints, self.new.constraints, lambda _: "constraint",
                            lambda c: format_expr(c.expr)):
            a, b = self.old.constraints[n], self.new.constraints[n]
            ta, tb = text(self.old, n), text(self.new, n)
            labels = b.labels or a.labels
            if ta != tb:
                found = align(self.old.constraint_exprs.get(n) or a.expr, self.new.constraint_exprs.get(n) or b.expr)
                self.add(n, "constraint", "changed", "formula", ta, tb, a.span, b.span, labels=labels,
                         note="" if found.structural else "only numbers changed")
                self.expression_details(n, "constraint", found, labels)
            self.labels(n, "constraint", a.labels, b.labels, a.span, b.span)

    def helpers(self):
        def text(h):
            return f"helper {h.name}({', '.join(h.params)}) = {format_expr(h.expr)}"

        for n in self.whole(self.old.helpers, self.new.helpers, lambda _: "helper", text, labels_of=lambda _: {}):
            a, b = self.old.helpers[n], self.new.helpers[n]
            if a.params != b.params:
                self.add(n, "helper", "changed", "params", ", ".join(a.params), ", ".join(b.params), a.span, b.span)
            if format_expr(a.expr) != format_expr(b.expr):
                self.add(n, "helper", "changed", "formula", format_expr(a.expr), format_expr(b.expr), a.span, b.span,
                         note="definitions that call it are listed with their expanded formulas")


# ---------------------------------------------------------------- metadata


def _metadata(old: VersionModel, new: VersionModel) -> list[Change]:
    out: list[Change] = []
    kinds = sorted(set(old.subjects) | set(new.subjects), key=_kind_order)

    def add(name, op, a, b, part="", sa=None, sb=None):
        out.append(Change(name, "metadata", op, name, a, b, list(kinds), SourceRef.of(sa or old.header_span),
                          SourceRef.of(sb or new.header_span), part))

    def cmp(name, a, b, sa=None, sb=None):
        if a != b:
            add(name, "added" if a is None else "removed" if b is None else "changed", a, b, "", sa, sb)

    cmp("methodology", old.methodology, new.methodology)
    for lang in LANGS:
        a, b = old.title.get(lang), new.title.get(lang)
        if a != b:
            add("title", "added" if a is None else "removed" if b is None else "changed", a, b, lang)
    cmp("basis", old.basis or None, new.basis or None)
    cmp("status", old.status or None, new.status or None, _hdr(old, "status_span"), _hdr(new, "status_span"))
    cmp("effective_from", old.effective_from.isoformat() if old.effective_from else None,
        new.effective_from.isoformat() if new.effective_from else None)
    cmp("effective_to", old.effective_to.isoformat() if old.effective_to else None,
        new.effective_to.isoformat() if new.effective_to else None)
    cmp("subjects", ", ".join(old.subjects) or None, ", ".join(new.subjects) or None,
        _hdr(old, "subjects_span"), _hdr(new, "subjects_span"))
    cmp("extends", old.extends, new.extends)
    return out


def _hdr(model: VersionModel, attr: str) -> Span | None:
    """A span inside the header (status line, subjects line), when the parser kept it."""
    header = _header(model.source_text, model.path)
    span = getattr(header, attr, None) if header is not None else None
    return span if span is not None and span.line > 0 else None


@functools.lru_cache(maxsize=64)
def _header(text: str, path: str):
    """The parsed header of a rule file: the model keeps only the header's span, not its lines' spans."""
    from .parser import parse

    try:
        return parse(text, path).header
    except Exception:  # noqa: BLE001 - fall back to the header's span
        return None


# ---------------------------------------------------------------- the diff


def _kind_order(k: str) -> tuple:
    order = ("central", "local", "servant")
    return (order.index(k) if k in order else len(order), k)


def _merge_kinds(per_kind: list[list[Change]]) -> list[Change]:
    """One change per distinct change, naming every subject kind it applies to."""
    merged: dict[tuple, Change] = {}
    for changes in per_kind:
        for c in changes:
            hit = merged.get(c.key)
            if hit is None:
                merged[c.key] = c
            else:
                for k in c.kinds:
                    if k not in hit.kinds:
                        hit.kinds.append(k)
    out = list(merged.values())
    for c in out:
        c.kinds.sort(key=_kind_order)
    return out


def _merged_order(old: list[str], new: list[str]) -> dict[str, float]:
    """Positions for names of both lists: the new order, with removed names next to their old neighbours."""
    pos: dict[str, float] = {n: float(i) for i, n in enumerate(new)}
    for i, n in enumerate(old):
        if n in pos:
            continue
        following = next((pos[m] for m in old[i + 1:] if m in pos), float(len(new)))
        pos[n] = following - 0.5 + i / (1000.0 * (len(old) + 1))
    return pos


def _positions(old: VersionModel, new: VersionModel) -> dict[tuple[str, str], float]:
    """(group, name) -> listing position, from the declaration (and evaluation) order of every scope."""
    out: dict[tuple[str, str], float] = {}
    groups = {"input": "inputs", "record": "records", "param": "params", "table": "tables", "grade": "grades",
              "constraint": "constraints", "helper": "helpers"}
    kinds = sorted(set(old.subjects) | set(new.subjects), key=_kind_order)
    for group, attr in list(groups.items()) + [("definition", "order")]:
        o = list(dict.fromkeys(n for k in kinds if k in old.scopes for n in getattr(old.scopes[k], attr)))
        w = list(dict.fromkeys(n for k in kinds if k in new.scopes for n in getattr(new.scopes[k], attr)))
        for n, p in _merged_order(o, w).items():
            out[(group, n)] = p
    return out


def _group(thing: str) -> str:
    return "definition" if thing in DEFINITION_KINDS else thing


def _sort(changes: list[Change], positions: dict[tuple[str, str], float]) -> list[Change]:
    """By thing (inputs, records, params, definitions in evaluation order, tables, grades, …), then name."""
    rank = {"metadata": 0, "input": 1, "record": 2, "param": 3, "definition": 4, "table": 5, "grade": 6,
            "constraint": 7, "helper": 8}
    index = {id(c): i for i, c in enumerate(changes)}
    return sorted(changes, key=lambda c: (rank.get(_group(c.thing), 9), positions.get((_group(c.thing), c.name), 1e9),
                                          c.name, index[id(c)]))


SourceLookup = Callable[[str], "str | None"]


def diff_models(old: VersionModel, new: VersionModel, sources: Mapping[str, str] | None = None,
                source_lookup: SourceLookup | None = None) -> DiffResult:
    """The semantic diff of two version models (see ``diff_versions``)."""
    kinds = sorted(set(old.subjects) | set(new.subjects), key=_kind_order)
    per_kind = [_ScopeDiff(k, old.scopes.get(k), new.scopes.get(k)).run() for k in kinds]
    changes = _metadata(old, new) + _sort(_merge_kinds(per_kind), _positions(old, new))
    texts = dict(sources or {})
    texts.setdefault(old.path, old.source_text)
    texts.setdefault(new.path, new.source_text)
    wanted = {s.file for c in changes for s in (c.old_source, c.new_source) if s is not None}
    for f in sorted(wanted - set(texts)):
        text = source_lookup(f) if source_lookup else None
        if text is None:
            try:
                text = Path(f).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
        if text is not None:
            texts[f] = text
    return DiffResult(VersionInfo.of(old), VersionInfo.of(new), changes, texts)


def diff_versions(old, new, sources: Mapping[str, str] | None = None, source_lookup: SourceLookup | None = None) -> DiffResult:
    """The semantic diff of two ``CompiledVersion``s (or ``VersionModel``s).

    ``sources`` (file -> text) and ``source_lookup`` supply the text of files other than the two
    versions' own (an amendment's base), for side-by-side views; otherwise they are read from disk
    when present. Changes come metadata first, then grouped by thing in source order.
    """
    return diff_models(_model(old), _model(new), sources, source_lookup)


def _model(v) -> VersionModel:
    return v if isinstance(v, VersionModel) else v.model


def registry_sources(registry, *versions) -> dict[str, str]:
    """File -> text for the versions and every base they extend, from a ``Registry``."""
    out: dict[str, str] = {}
    todo = list(versions)
    while todo:
        v = todo.pop()
        m = _model(v)
        out[m.path] = m.source_text
        if m.extends:
            try:
                todo.append(registry.get(m.methodology, m.extends))
            except Exception:  # noqa: BLE001 - a missing base only loses the side-by-side text
                pass
    return out


def changed_names(result: DiffResult) -> list[str]:
    """Names of the definitions whose meaning changed (for impact analysis: what to look at)."""
    return list(dict.fromkeys(c.name for c in result.changes if c.thing in DEFINITION_KINDS))


__all__ = ["Change", "DiffResult", "SourceRef", "VersionInfo", "align", "changed_names", "diff_models",
           "diff_versions", "registry_sources"]

