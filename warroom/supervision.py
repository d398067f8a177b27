"""How `warroom up` keeps its children running: its two servers and its components,
each started again when it dies, after a delay that grows while it keeps dying."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from warroom.servers import Server, ServerError


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


def supervise(servers: list[Server], components: list, *, restarted: Callable[[Server], None],
              changed: Callable[[], None], tick_s: float = 0.5) -> None:
    """Forever (until a signal raises out of it): restart whatever of `servers` and
    `components` died, each after its own `Backoff`.

    A dead server is reaped at once (a zombie would hold its pid, and PostgreSQL's
    `postmaster.pid` with it), started again on its port and data directory, then handed
    to `restarted`. `changed` is called after anything was started again (the pids
    changed). A component is anything with `name`, `process`, `started_at`, `backoff`,
    `log_path`, `next_start` and `start()` (`warroom.devstack.Component`).
    """
    backoffs = {id(server): Backoff() for server in servers}
    since = {id(server): time.monotonic() for server in servers}
    waiting: dict[int, float] = {}  # servers found dead, and when to start them again
    while True:
        now = time.monotonic()
        for server in servers:
            key = id(server)
            if key not in waiting and not server.alive():
                code = server.process.wait()
                print(f"warroom: {server.name} exited with {code}; starting it again", flush=True)
                waiting[key] = now + backoffs[key].after_crash(now - since[key])
            if key in waiting and now >= waiting[key]:
                try:
                    server.restart()
                except ServerError as err:
                    print(f"warroom: {server.name} did not start again: {err}", flush=True)
                    waiting[key] = time.monotonic() + backoffs[key].after_crash(0)
                    continue
                del waiting[key]
                since[key] = time.monotonic()
                print(f"warroom: {server.name} serving again on port {server.port}", flush=True)
                restarted(server)
                changed()
        for c in components:
            proc = c.process
            if proc is not None and proc.poll() is not None:
                print(f"warroom: {c.name} exited with {proc.returncode}; restarting "
                      f"(see {c.log_path})", flush=True)
                c.process = None
                c.next_start = now + c.backoff.after_crash(now - c.started_at)
            if c.process is None and now >= c.next_start:
                c.start()
                changed()
        time.sleep(tick_s)
