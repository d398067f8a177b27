"""The worker's side of a log that went back (`foundation.log_identity`).

The worker's tables (incident states, intake groups) were recovered from changelogs of
the log it started on, and its positions name records in it. If the broker comes back
with another log (the embedded Tansu restarted empty), deciding on those states would
append versions that follow nothing. So the worker stops, with an error, as soon as it
sees the cluster change or the commands topic end before what it has read; restarted
(by `warroom up`, or whatever runs it), it recovers its tables from the log there is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import mode
from aiokafka.errors import KafkaError

from streams.app import Streams
from foundation.log_identity import LogProbe

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


class LogWentBack(RuntimeError):
    """The broker holds another log than the one the worker's state came from."""


def install_log_watch(streams: Streams, read: Callable[[], Mapping[int, int]]) -> None:
    """Check every CHECK_EVERY_S that the log is the one the worker started on; `read`
    gives, per commands partition, the next offset the decider has read up to."""
    topic = streams.settings.topics.name("commands")
    probes: list[LogProbe] = []  # made in the worker's loop, on the first check
    seen: dict[str, str | None] = {}

    @streams.app.timer(CHECK_EVERY_S, name="log-watch")
    async def log_watch() -> None:
        try:
            if not probes:
                probe = LogProbe(streams.settings.kafka, "worker-log-watch")
                try:
                    await probe.start()
                except BaseException:
                    await probe.stop()  # a client that could not start is closed, not leaked
                    raise
                probes.append(probe)
            why, cluster = await probes[0].check(seen.get("cluster"), topic, dict(read()))
        except (KafkaError, OSError) as err:
            log.info("log watch: cannot check the log now: %r", err)
            return
        if why is not None:
            log.error("the log went back: %s; stopping, so that a restart recovers state from the log there is", why)
            await streams.app.crash(LogWentBack(why))
            return
        seen.setdefault("cluster", cluster)

    @streams.app.service
    class ClosingLogWatch(mode.Service):
        async def on_stop(self) -> None:
            for probe in probes:
                await probe.stop()
