"""Collect every configuration problem, then raise one error that lists them all.

Each problem names the prop, the value given and what is allowed. Values that are unresolved CDK tokens
(known only at deploy time) are never judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Size, SizeRoundingBehavior, Token

# SageMaker's patterns (CreateEndpoint / ProductionVariant / CreateModel API references).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_NAME_LENGTH = 63
ENV_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ConfigurationError(ValueError):
    """An invalid construct configuration; `problems` lists every problem found, not just the first."""

    def __init__(self, construct_path: str, problems: Iterable[Problem]) -> None:
        self.construct_path = construct_path
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        lines = [f"{construct_path}: {count} configuration problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Problem:
    """One invalid prop: its name, the value given and what would be allowed instead."""

    prop: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        return f"{self.prop}={_show(self.value)}: {self.allowed}"


def _show(value: Any) -> str:
    if isinstance(value, Duration):
        return value.to_human_string()
    if isinstance(value, Size):
        return f"{value.to_gibibytes(rounding=SizeRoundingBehavior.NONE):g} GiB"
    return repr(value)


def is_token(value: Any) -> bool:
    """True when `value` (a string, number, Duration or Size) is resolved only at deploy time."""
    if isinstance(value, Duration | Size):
        return bool(value.is_unresolved())
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return Token.is_unresolved(value)
    return False


class Problems:
    """Accumulates problems; `raise_if_any` raises one ConfigurationError for all of them."""

    def __init__(self) -> None:
        self._items: list[Problem] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, prop: str, value: Any, allowed: str) -> None:
        self._items.append(Problem(prop, value, allowed))

    def extend(self, other: Problems) -> None:
        self._items.extend(other._items)

    def raise_if_any(self, construct_path: str) -> None:
        if self._items:
            raise ConfigurationError(construct_path, self._items)

    # Checks. Each returns nothing and records a problem when the value is known and wrong.

    def name(self, prop: str, value: str | None, what: str) -> None:
        """A SageMaker resource name: 1-63 letters, digits and hyphens, starting and ending alphanumeric."""
        if value is None or is_token(value):
            return
        if not isinstance(value, str) or not value:
            self.add(prop, value, f"a non-empty {what} is required")
        elif len(value) > MAX_NAME_LENGTH or not NAME_PATTERN.match(value):
            self.add(
                prop,
                value,
                f"a {what} has 1-{MAX_NAME_LENGTH} characters (this one has {len(value)}): letters, digits "
                "and hyphens, starting and ending with a letter or digit",
            )

    def integer(self, prop: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
        if is_token(value):
            return
        upper = f" and at most {maximum}" if maximum is not None else ""
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(prop, value, f"a whole number of at least {minimum}{upper} is required")
        elif value < minimum or (maximum is not None and value > maximum):
            self.add(prop, value, f"must be at least {minimum}{upper}")

    def number(
        self, prop: str, value: Any, *, minimum: float, exclusive: bool, maximum: float | None = None
    ) -> None:
        if is_token(value):
            return
        bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
        upper = f" and at most {maximum:g}" if maximum is not None else ""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(prop, value, f"a number {bound}{upper} is required")
        elif (value <= minimum if exclusive else value < minimum) or (
            maximum is not None and value > maximum
        ):
            self.add(prop, value, f"must be {bound}{upper}")

    def duration(self, prop: str, value: Duration | None, *, minimum_s: int, maximum_s: int | None) -> None:
        if value is None or is_token(value):
            return
        if not isinstance(value, Duration):
            self.add(prop, value, "a aws_cdk.Duration is required (e.g. Duration.minutes(5))")
            return
        seconds = value.to_seconds(integral=False)
        if seconds < minimum_s or (maximum_s is not None and seconds > maximum_s):
            upper = f" and at most {maximum_s} seconds" if maximum_s is not None else ""
            self.add(prop, value, f"must be at least {minimum_s} seconds{upper}")
