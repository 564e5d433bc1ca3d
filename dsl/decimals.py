"""Exact decimal numbers: parsing, formatting and the arithmetic context.

Scores never pass through binary floating point. JSON is read with ``parse_float=Decimal``, and
a float reaching the engine from Python code is refused rather than converted.
"""

from __future__ import annotations

import decimal
import json
from decimal import Decimal
from typing import Any

# Enough digits that no published score is affected by intermediate precision; rounding to a
# methodology's places happens only where a rule says so.
PRECISION = 40
CONTEXT = decimal.Context(
    prec=PRECISION,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

ROUNDING_MODES = {
    "half-up": decimal.ROUND_HALF_UP,
    "half-even": decimal.ROUND_HALF_EVEN,
    "half-down": decimal.ROUND_HALF_DOWN,
    "up": decimal.ROUND_UP,
    "down": decimal.ROUND_DOWN,
    "ceiling": decimal.ROUND_CEILING,
    "floor": decimal.ROUND_FLOOR,
}


class NotADecimal(ValueError):
    pass


def to_decimal(value: Any) -> Decimal:
    """An exact Decimal from an int, a Decimal or a decimal string; floats and bools are refused."""
    if isinstance(value, bool):
        raise NotADecimal("expected a number, got a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotADecimal("expected a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise NotADecimal("binary floating-point numbers are not accepted; send the number as a decimal string")
    if isinstance(value, str):
        text = value.strip()
        try:
            d = Decimal(text)
        except decimal.InvalidOperation:
            raise NotADecimal(f"{value!r} is not a decimal number") from None
        if not d.is_finite():
            raise NotADecimal(f"{value!r} is not a finite number")
        return d
    raise NotADecimal(f"expected a number, got {type(value).__name__}")


def format_decimal(d: Decimal) -> str:
    """Plain notation, never exponents; keeps the digits the value has (``92.9``, ``10``, ``0.3333…``)."""
    if d == 0:
        # -0 and 0E-5 both print as 0 with their places: 0, 0.0, 0.00
        exp = d.as_tuple().exponent
        return "0" if not isinstance(exp, int) or exp >= 0 else "0." + "0" * (-exp)
    text = format(d, "f")
    return text


def round_decimal(d: Decimal, places: int, mode: str) -> Decimal:
    return d.quantize(Decimal(1).scaleb(-places), rounding=ROUNDING_MODES[mode], context=CONTEXT)


def loads(text: str) -> Any:
    """JSON with every number read exactly."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


class DecimalEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return format_decimal(o)
        if hasattr(o, "isoformat"):
            return o.isoformat()
        return super().default(o)


def dumps(obj: Any, **kw) -> str:
    return json.dumps(obj, cls=DecimalEncoder, ensure_ascii=False, **kw)
