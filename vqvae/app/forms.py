"""Numbers from the browser and the API, read one way: a form sends 32.0 for 32, an API call may
send "3" or a numpy scalar; 1.5 is never read as 1, and True is no number."""

from __future__ import annotations

import math
from typing import Any

from ..errors import VQVAEError


def number(value: Any, what: str, error: type[VQVAEError]) -> float:
    """A finite or infinite float (the caller bounds it), else `error` naming `what`."""
    if isinstance(value, bool):
        raise error(f"{what} must be a number; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{what} must be a number; got {value!r}") from None


def whole_number(value: Any, what: str, error: type[VQVAEError]) -> int:
    """An int from 3, 3.0, "3" or a numpy scalar, else `error` naming `what`."""
    if isinstance(value, bool):
        raise error(f"{what} must be a whole number; got {value!r}")
    try:
        parsed = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{what} must be a whole number; got {value!r}") from None
    if not (math.isfinite(parsed) and parsed.is_integer()):
        raise error(f"{what} must be a whole number; got {value!r}")
    return int(parsed)
