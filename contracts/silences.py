"""Label matchers: what a silence or a maintenance window swallows (SPEC §15).

A matcher compares one alert label with `value`: `=` equal, `!=` not equal, `=~` the
whole label matches the regular expression, `!~` it does not (Alertmanager's rules: a
regex is anchored at both ends; a label the alert lacks reads as "").
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from contracts.common import Message

MatcherOp = Literal["=", "!=", "=~", "!~"]


def check_regex(op: str, value: str) -> None:
    """Raise ValueError when `op` compares by regular expression and `value` is not one."""
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"value is not a valid regular expression: {err}") from None


class Matcher(Message):
    label: str = Field(min_length=1, max_length=200)
    op: MatcherOp
    value: str = Field(max_length=1_000)

    @field_validator("label")
    @classmethod
    def _label_name(cls, label: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
            raise ValueError("a label name is letters, digits and underscores, not starting with a digit")
        return label

    @model_validator(mode="after")
    def _compiles(self) -> Matcher:
        check_regex(self.op, self.value)
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether `labels` satisfy this matcher."""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def all_match(matchers: tuple[Matcher, ...] | list[Matcher], labels: dict[str, str]) -> bool:
    """True when every matcher holds for `labels` (a silence needs at least one matcher)."""
    return bool(matchers) and all(matcher.matches(labels) for matcher in matchers)
