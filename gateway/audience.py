"""Who a change goes to: the change feed's subscribers grouped by what they follow.

A subscriber follows everything, one incident, one service, or one incident of one
service (`Subscription.matches`). Grouping them by that filter means a change is offered
only to the (at most four) groups it can match, instead of asking every subscriber of
every incident whether it wants it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from gateway.changes import Change, Subscription

Filter = tuple[UUID | None, str | None]


class Audience:
    """A set of subscriptions that can say which of them a change matches."""

    def __init__(self) -> None:
        self._groups: dict[Filter, set[Subscription]] = {}
        self._size = 0

    def add(self, sub: Subscription) -> None:
        group = self._groups.setdefault((sub.incident, sub.service), set())
        if sub not in group:
            group.add(sub)
            self._size += 1

    def discard(self, sub: Subscription) -> None:
        key = (sub.incident, sub.service)
        group = self._groups.get(key)
        if group is not None and sub in group:
            group.remove(sub)
            self._size -= 1
            if not group:
                del self._groups[key]

    def clear(self) -> None:
        self._groups.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Subscription]:
        for group in list(self._groups.values()):
            yield from list(group)

    def of(self, change: Change, everyone: bool = False) -> Iterable[Subscription]:
        """Exactly the subscriptions whose `matches(change)` is true (all, when `everyone`)."""
        if everyone:
            return list(self)
        keys = {(None, None), (change.incident_id, None), (None, change.service),
                (change.incident_id, change.service)}
        return [sub for key in keys for sub in self._groups.get(key, ())]
