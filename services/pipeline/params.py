"""Query parameters, parsed strictly: one helper for every route.

`str.isdigit()` accepts superscripts and other scripts' digits ("²", "٣"), which `int()` then
refuses (a 500) or reads as a number the client never typed in ASCII. A number here is 1 to
MAX_DIGITS ASCII digits, within its bounds; anything else is a 400 problem that names the parameter.
"""
from __future__ import annotations

import re

from flask import request

from ..common.errors import HTTPProblem

MAX_DIGITS = 9  # far above any bound; keeps int() off huge strings
ASCII_NUMBER = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def bad_parameter(name: str, detail: str) -> HTTPProblem:
    return HTTPProblem(400, f"Bad {name}", detail, parameter=name)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number from `low` to `high` (`default` when absent)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = int(raw) if ASCII_NUMBER.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise bad_parameter(name, f"{name} must be a whole number from {low} to {high} in ASCII digits")
    return value


def choice_arg(name: str, default: str, choices: tuple[str, ...]) -> str:
    """The query parameter `name` as one of `choices` (`default` when absent)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise bad_parameter(name, f"{name} must be one of {', '.join(choices)}")
    return raw
