"""What numbers the store can keep: DynamoDB's number type, checked where input is validated.

DynamoDB keeps up to 38 significant digits, magnitudes from 1E-130 to below 1E+126 (and zero), and
boto3 refuses to send a number it would have to round (a 39-digit integer, even ``10**100``). A number
outside that makes the write fail. Input that carries free-form numbers (custom form fields, event
properties, deal amounts) is checked against this when it is validated, so such a request is a 400
that names the field, never a 500 or a 503 that a client would retry forever.
"""

from __future__ import annotations

from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow

__all__ = ["MAX_DIGITS", "is_storable_number"]

MAX_DIGITS = 38
_MIN_EXPONENT = -130  # 1E-130
_MAX_EXPONENT = 125  # 9.99...E+125
# The context boto3 serialises numbers with (boto3.dynamodb.types.DYNAMODB_CONTEXT).
_DYNAMODB = Context(
    Emin=-128, Emax=126, prec=MAX_DIGITS, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


def is_storable_number(value: int | float | Decimal) -> bool:
    """Whether the store can write ``value`` exactly (a float as its shortest repr, as the store does)."""
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            return False
        _DYNAMODB.create_decimal(number)
    except (ArithmeticError, ValueError, TypeError):
        return False
    return number.is_zero() or _MIN_EXPONENT <= number.adjusted() <= _MAX_EXPONENT
