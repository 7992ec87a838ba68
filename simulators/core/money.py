"""Money and billing months, the same for both services: Decimal rounded half-up to cents once per line."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal

from ksimkit.simulators.core.errors import unprocessable

CENT = Decimal("0.01")
PERIOD = re.compile(r"(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])", re.ASCII)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` (years 1970 to 2999) as the half-open range of its days; anything else is INVALID_PERIOD."""
    match = PERIOD.fullmatch(period) if isinstance(period, str) else None
    if match is None:
        raise unprocessable("INVALID_PERIOD", f"billing period {period!r} is not YYYY-MM (years 1970 to 2999)")
    year, month = int(match[1]), int(match[2])
    start = dt.date(year, month, 1)
    return start, start + dt.timedelta(days=calendar.monthrange(year, month)[1])
