"""The one set of value checks for configs and options: each raises `ValueError` naming the field and quoting the bad
value (lerobot-style `__post_init__` checks; never `assert` on user input).

    check_int("max_steps", self.max_steps, minimum=1)
    check_number("encoder_lr", self.encoder_lr, minimum=0, strict=True)      # > 0
    check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
    check_multiple_of("crop_size", self.crop_size, config.patch_size, "the patch size")

`optional=True` lets `None` through ("unset: chosen automatically"). Booleans are never accepted as numbers.
The CLI turns these `ValueError`s into one line and exit status 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _bounds(minimum: float | None, maximum: float | None, strict: bool) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict else '>='} {minimum}")
    if maximum is not None:
        parts.append(f"<= {maximum}")
    return " and ".join(parts)


def check_int(
    name: str, value: Any, minimum: int | None = None, maximum: int | None = None, optional: bool = False
) -> None:
    """`value` is an integer (not a bool) in [minimum, maximum]."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        bounds = _bounds(minimum, maximum, strict=False)
        unset = " or unset (automatic)" if optional else ""
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}{unset}, got {value!r}")


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
    optional: bool = False,
) -> None:
    """`value` is a finite int or float (not a bool), >= minimum (> minimum when `strict`) and <= maximum."""
    if value is None and optional:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bounds = _bounds(minimum, maximum, strict)
        unset = " or unset (automatic)" if optional else ""
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}{unset}, got {value!r}")


def check_probability(name: str, value: Any) -> None:
    """`value` is a number in [0, 1]."""
    check_number(name, value, minimum=0.0, maximum=1.0)


def check_choice(name: str, value: Any, choices: Iterable[Any], optional: bool = False) -> None:
    """`value` is one of `choices` (listed in the error)."""
    if value is None and optional:
        return
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_multiple_of(name: str, value: Any, factor: int, what: str | None = None, optional: bool = False) -> None:
    """`value` is a positive integer multiple of `factor` (`what` names the factor, e.g. "the patch size")."""
    if value is None and optional:
        return
    check_int(name, value, minimum=factor)
    if value % factor:
        label = f"{what} {factor}" if what else str(factor)
        raise ValueError(f"{name} must be a multiple of {label}, got {value!r}")


__all__ = ["check_choice", "check_int", "check_multiple_of", "check_number", "check_probability"]
