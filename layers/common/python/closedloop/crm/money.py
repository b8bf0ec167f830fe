"""Deal amounts: exact decimals that keep their currency, and their conversion to one base currency."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from closedloop.crm.errors import CurrencyRateError

__all__ = ["normalise_currency", "parse_amount", "to_base_currency"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def normalise_currency(code: str | None) -> str | None:
    """Return an ISO 4217 code upper-cased, or ``None`` for a blank one.

    Parameters
    ----------
    code
        A currency code as a CRM sends it (``"eur"``, ``" EUR "``).

    Returns
    -------
    str or None
        The three-letter code in upper case.

    Raises
    ------
    ValueError
        When the code is not three letters.
    """
    if code is None:
        return None
    cleaned = code.strip().upper()
    if not cleaned:
        return None
    if not _CURRENCY.fullmatch(cleaned):
        raise ValueError(f"not an ISO 4217 currency code: {code!r}")
    return cleaned


def parse_amount(value: object) -> Decimal | None:
    """Read a deal amount exactly (never through a float), or ``None`` when the CRM sent none.

    Parameters
    ----------
    value
        A string (``"1200.50"``, ``""``), an int, a float (read through its shortest repr) or a Decimal.

    Returns
    -------
    Decimal or None
        The amount; ``None`` for ``None`` or a blank string.

    Raises
    ------
    ValueError
        When the value is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError("an amount cannot be a boolean")
    if value is None:
        return None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | float | str):
        text = value.strip() if isinstance(value, str) else repr(value)
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    else:
        raise ValueError(f"not a number: {type(value).__name__}")
    if not amount.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return amount


def to_base_currency(amount: Decimal, currency: str, rates: Mapping[str, Decimal], base: str) -> Decimal:
    """Convert an amount to the base currency with configured rates.

    Parameters
    ----------
    amount
        The deal amount in ``currency``.
    currency
        Its ISO 4217 code (any case).
    rates
        Units of the base currency that one unit of each currency is worth, keyed by ISO code
        (``{"EUR": Decimal("1.08")}`` with base ``"USD"``). The base currency needs no entry.
    base
        The ISO 4217 code reports are in.

    Returns
    -------
    Decimal
        The exact product, not rounded: round once, where the total is shown.

    Raises
    ------
    CurrencyRateError
        When ``currency`` is neither the base nor in ``rates``, or its rate is not positive.

    Examples
    --------
    >>> to_base_currency(Decimal("100"), "eur", {"EUR": Decimal("1.08")}, "USD")
    Decimal('108.00')
    """
    source = normalise_currency(currency)
    target = normalise_currency(base)
    if source is None or target is None:
        raise CurrencyRateError("both the amount's currency and the base currency are required")
    if source == target:
        return amount
    normalised = {code.upper(): rate for code, rate in rates.items()}
    rate = normalised.get(source)
    if rate is None:
        raise CurrencyRateError(f"no exchange rate from {source} to {target} is configured")
    rate = Decimal(rate)
    if not rate.is_finite() or rate <= 0:
        raise CurrencyRateError(f"the exchange rate of {source} must be a positive number")
    return amount * rate
