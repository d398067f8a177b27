"""The projector process: read `<prefix>.events`, apply batches to the read models.

The loop only moves events: which records form a batch, where to resume, what
to do when Kafka or PostgreSQL go away. What a batch *does* is `projections.apply`.
`projector` is the loop, `batch` how records become a batch, `connections` the
servers it needs, `isolation` what it does when a batch fails on its own data.

Resuming: the truth is `projection_offsets`, written in each batch's transaction.
On every partition assignment the consumer seeks to those offsets (or the log's
start), so a crash at any point neither loses nor doubles a row. Kafka's own
committed offsets are written after each batch for tools that watch group lag.

A log that went back (`foundation.log_identity`: another cluster, or partitions that end
before the offsets stored) is looked for at every assignment and every few seconds.
Then nothing more is applied: with `projector.on_log_reset = "rebuild"` the read models
are emptied and the new log read from its start (`projections.replay.log_reset`), otherwise
the projector waits until the log is the one the read models describe again.

May import `contracts`, `foundation` and the rest of `projections` (the read models
through `projections.apply`, the switch's lock and the log reset from `replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from foundation.event_loop import tune_gc
from foundation.settings import Settings
from projections.runner.connections import Stopped
from projections.runner.projector import Projector

log = logging.getLogger("warroom.projector")

__all__ = ["Projector", "run"]


async def run(settings: Settings) -> None:
    """Run a projector until SIGTERM or SIGINT, then stop cleanly (`warroom projector`).

    Waits for PostgreSQL and Kafka as long as it takes; raises if the loop dies.
    """
    tune_gc()
    projector = Projector(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, projector.request_stop)
    try:
        await projector.start()
    except Stopped:
        await projector.stop()
        return
    log.info("projecting %s into schema %s", projector.topic, projector.schema)
    try:
        await projector.wait()
    finally:
        await projector.stop()
