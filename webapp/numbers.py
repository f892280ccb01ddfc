"""Numbers from outside (environment, forms, JSON, the engine's costs): one parser for all."""

from __future__ import annotations

import math


def finite_float(value) -> float | None:
    """`value` as a finite float (text with blanks around it is fine), or None when it is not a
    number, is NaN or infinite, or is an int past what a float holds."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
