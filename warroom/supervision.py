"""How `warroom up` keeps its children running: how long to wait before a restart."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """The delay before restarting something that died: `base_s`, doubling with each
    crash in a row up to `max_s`, and back to `base_s` once it had run `healthy_s`
    without dying, so a component that crashed a few times long ago restarts at once."""

    base_s: float = 0.5
    max_s: float = 30.0
    healthy_s: float = 60.0
    crashes: int = 0

    def after_crash(self, ran_for_s: float) -> float:
        """Seconds to wait before the next start of what just died after `ran_for_s`."""
        if ran_for_s >= self.healthy_s:
            self.crashes = 0
        self.crashes += 1
        return min(self.max_s, self.base_s * 2 ** (self.crashes - 1))
