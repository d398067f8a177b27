"""The worker's side of a log that went back (`streams.log_identity`).

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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.app import Streams
from streams.log_identity import cluster_id, went_back

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


class LogWentBack(RuntimeError):
    """The broker holds another log than the one the worker's state came from."""


def install_log_watch(streams: Streams, read: Callable[[], Mapping[int, int]]) -> None:
    """Check every CHECK_EVERY_S that the log is the one the worker started on; `read`
    gives, per commands partition, the next offset the decider has read up to."""
    kafka = streams.settings.kafka
    topic = streams.settings.topics.name("commands")
    seen: dict[str, str | None] = {}
    clients: list = []

    async def connected() -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        if not clients:
            # A producer only for its metadata client (it never sends), a consumer only for end offsets.
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-log-watch")
            consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=None, enable_auto_commit=False,
                                        client_id=f"{kafka.client_id}-log-watch")
            await producer.start()
            await consumer.start()
            clients.extend((producer, consumer))
        return clients[0], clients[1]

    @streams.app.timer(CHECK_EVERY_S, name="log-watch")
    async def log_watch() -> None:
        try:
            producer, consumer = await connected()
            cluster = await cluster_id(producer.client)
            positions = dict(read())
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in positions]) if positions else {}
        except (KafkaError, OSError) as err:
            log.info("log watch: cannot check the log now: %r", err)
            return
        why = went_back(seen.get("cluster"), cluster, positions, {tp.partition: end for tp, end in ends.items()})
        if why is not None:
            log.error("the log went back: %s; stopping, so that a restart recovers state from the log there is", why)
            await streams.app.crash(LogWentBack(why))
            return
        seen.setdefault("cluster", cluster)

    @streams.app.service
    class ClosingLogWatch(mode.Service):
        async def on_stop(self) -> None:
            for client in clients:
                await client.stop()
