"""Small readers of raw payload values shared by the feed parsers: strict, None when unreadable.

A parser turns None into a Problem carrying the raw record, so nothing is coerced silently.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

import pandas as pd

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def iso_date(value: Any) -> date | None:
    """A YYYY-MM-DD string as a date; None for anything else."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def number(value: Any) -> float | None:
    """A finite float from a JSON number or a plain decimal string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            return None
    elif not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def sorted_by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Stable sort with a fresh index (an empty frame stays as it is)."""
    if frame.empty:
        return frame
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
