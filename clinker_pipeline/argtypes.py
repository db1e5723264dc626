"""argparse converters shared by every `clinker` subcommand: a bad number is refused by the
parser with the bound it broke, before any work (or any broker connection) starts."""

from __future__ import annotations

import argparse
import math


def _bounded(text: str, kind: type, low: float, *, strict: bool, high: float | None = None):
    try:
        value = kind(text)
    except ValueError:
        kind_name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {kind_name}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if (value <= low if strict else value < low) or (high is not None and value > high):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _bounded(text, int, 1, strict=False)


def non_negative_int(text: str) -> int:
    return _bounded(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    return _bounded(text, float, 0, strict=True)


def non_negative_float(text: str) -> float:
    return _bounded(text, float, 0, strict=False)


def share(text: str) -> float:
    """A fraction within [0, 1]."""
    return _bounded(text, float, 0, strict=False, high=1)
