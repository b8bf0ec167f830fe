"""What numbers the store can keep: DynamoDB's number type, checked where input is validated.

DynamoDB keeps up to 38 significant digits, magnitudes from 1E-130 to below 1E+126 (and zero); a
number outside that makes the write fail. Input that carries free-form numbers (custom form fields,
event properties, deal amounts) is checked against this when it is validated, so such a request is a
400 that names the field, never a 500 or a 503 that a client would retry forever.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["MAX_DIGITS", "is_storable_number"]

MAX_DIGITS = 38
_MIN_EXPONENT = -130  # 1E-130
_MAX_EXPONENT = 125  # 9.99...E+125


def is_storable_number(value: int | float | Decimal) -> bool:
    """Whether DynamoDB can store ``value`` exactly (a float as its shortest repr, as the store does)."""
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return False
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    # Significant digits without trailing zeros (not normalize(): it rounds to the context's 28 digits).
    significant = "".join(map(str, number.as_tuple().digits)).strip("0")
    return len(significant) <= MAX_DIGITS and _MIN_EXPONENT <= number.adjusted() <= _MAX_EXPONENT
