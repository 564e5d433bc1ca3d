"""Print expressions in one normal form: for explanations, semantic diffs and structural equality.

``format_expr(e)`` gives the formula as written, with canonical spacing and only the parentheses
precedence needs; ``format_expr(e, values)`` substitutes the values of named things.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Mapping

from . import ast
from .decimals import format_decimal

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4,
               "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}


def _value_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format_decimal(v)
    if isinstance(v, list):
        return f"[{len(v)} items]"
    return str(v)


def format_expr(e: ast.Expr, values: Mapping[str, object] | None = None,
                rename: Callable[[str], str] | None = None) -> str:
    return _fmt(e, values, rename, 0)


def _fmt(e, values, rename, parent: int) -> str:  # noqa: C901 - one case per node type
    def sub(x, prec=0):
        return _fmt(x, values, rename, prec)

    if isinstance(e, ast.Num):
        return format_decimal(e.value)
    if isinstance(e, ast.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, ast.EnumLit):
        return e.value
    if isinstance(e, ast.Ref):
        if values is not None and e.name in values and not isinstance(values[e.name], list):
            return _value_text(values[e.name])
        return rename(e.name) if rename else e.name
    if isinstance(e, ast.FieldRef):
        return f"{e.var}.{e.field}"
    if isinstance(e, ast.Unary):
        if e.op == "not":
            text = "not " + sub(e.operand, _PRECEDENCE["not"])
            return f"({text})" if parent > _PRECEDENCE["not"] else text
        text = "-" + sub(e.operand, _PRECEDENCE["neg"])
        return f"({text})" if parent > _PRECEDENCE["neg"] else text
    if isinstance(e, ast.Binary):
        p = _PRECEDENCE[e.op]
        # left-associative: the right operand of - and / needs parentheses at equal precedence
        text = f"{sub(e.left, p)} {e.op} {sub(e.right, p + 1)}"
        return f"({text})" if parent > p else text
    if isinstance(e, ast.Call):
        args = [sub(a) for a in e.args] + [f"{k}: {sub(v)}" for k, v in e.named.items()]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ast.When):
        parts = [f"{sub(c)} -> {sub(v)}" for c, v in e.branches] + [f"else -> {sub(e.otherwise)}"]
        return "when { " + "; ".join(parts) + " }"
    if isinstance(e, ast.Aggregate):
        text = f"{e.var} in {sub(e.source)}"
        if e.where is not None:
            text += f" where {sub(e.where)}"
        if e.body is not None:
            text += f" : {sub(e.body)}"
        return f"{e.func}({text})"
    if isinstance(e, ast.Weighted):
        return "weighted(" + ", ".join(f"{format_decimal(t.weight)} * {sub(t.expr, 6)}" for t in e.terms) + ")"
    if isinstance(e, ast.Round):
        return f"round({sub(e.expr)}, {e.places}, {e.mode})"
    raise TypeError(f"cannot print {type(e).__name__}")


def walk(e: ast.Expr):
    """Every node of an expression, parents first."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def children(e) -> list:
    if isinstance(e, ast.Unary):
        return [e.operand]
    if isinstance(e, ast.Binary):
        return [e.left, e.right]
    if isinstance(e, ast.Call):
        return list(e.args) + list(e.named.values())
    if isinstance(e, ast.When):
        out = []
        for c, v in e.branches:
            out += [c, v]
        return out + [e.otherwise]
    if isinstance(e, ast.Aggregate):
        return [x for x in (e.source, e.where, e.body) if x is not None]
    if isinstance(e, ast.Weighted):
        return [t.expr for t in e.terms]
    if isinstance(e, ast.Round):
        return [e.expr]
    return []
