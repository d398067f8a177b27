"""Which log a reader is reading, and whether it went back.

A broker can come back with less log than its readers have already read: the embedded
Tansu (memory-only) restarted empty, an Apache Kafka whose storage was replaced, a topic
deleted and created again. Positions read before then name records that are gone or,
worse, other records. Two signs tell, and every reader checks both:

- the cluster id changed: each Tansu start has its own (`warroom.servers.start_tansu`),
  Apache Kafka keeps the one its storage was formatted with;
- a partition ends before a position already read from it (confirmed by reading: Tansu
  reports the first offset of a partition's last batch as its end).

`LogProbe` asks; `went_back` judges.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.protocol.metadata import MetadataRequest

from foundation.settings import KafkaSettings

PROBE_WAIT_MS = 200


async def cluster_id(client: AIOKafkaClient) -> str | None:
    """The cluster id the broker reports (Metadata v2 and later); None if it names none."""
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
    if node is None:
        raise ConnectionError("no broker known to ask for the cluster id")
    # An empty topic list asks for no topics: the answer is only the brokers and the cluster.
    response = await client.send(node, MetadataRequest([]))
    return getattr(response, "cluster_id", None)


class LogProbe:
    """Asks the broker which log it holds: its cluster id, and where partitions end.

    Its consumer belongs to no group, so it never takes partitions from anyone."""

    def __init__(self, kafka: KafkaSettings, name: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-{name}", group_id=None,
            enable_auto_commit=False, auto_offset_reset="none", fetch_max_wait_ms=PROBE_WAIT_MS,
            request_timeout_ms=int(kafka.request_timeout_s * 1000))

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def cluster_id(self) -> str | None:
        return await cluster_id(self._consumer._client)  # the consumer's own metadata client

    async def partitions(self, topic: str) -> set[int]:
        """The partitions of `topic` (none while it does not exist)."""
        found = self._consumer.partitions_for_topic(topic)
        if found is None:
            await self._consumer.topics()  # perhaps created since: fetch the metadata again
            found = self._consumer.partitions_for_topic(topic)
        return set(found or ())

    async def check(self, recorded_cluster: str | None, topic: str, read: Mapping[int, int]) -> tuple[str | None, str | None]:
        """(why the log went back or None, the cluster id now), for `topic` read up to
        `read` (partition → next offset) in `recorded_cluster`."""
        cluster = await self.cluster_id()
        wanted = [TopicPartition(topic, p) for p in read]
        ends = {tp.partition: end for tp, end in (await self._consumer.end_offsets(wanted)).items()} if wanted else {}
        for partition, end in ends.items():
            if end < read[partition] and await self._holds(TopicPartition(topic, partition), read[partition] - 1):
                ends[partition] = read[partition]  # the reported end was short, not the log
        return went_back(recorded_cluster, cluster, read, ends), cluster

    async def _holds(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the partition holds a record at `offset` (one short fetch)."""
        self._consumer.assign([tp])
        self._consumer.seek(tp, offset)
        try:
            fetched = await self._consumer.getmany(tp, timeout_ms=PROBE_WAIT_MS * 3, max_records=1)
        except OffsetOutOfRangeError:
            return False
        return any(record.offset == offset for record in fetched.get(tp, []))


def went_back(recorded_cluster: str | None, cluster: str | None, read: Mapping[int, int],
              ends: Mapping[int, int]) -> str | None:
    """Why the log is not the one that was read up to `read` (partition → next offset)
    in the cluster `recorded_cluster`; None when it may well be. `ends` are the
    partitions' end offsets now; a partition missing from `ends` is not judged."""
    if recorded_cluster is not None and cluster is not None and cluster != recorded_cluster:
        return f"the broker is another cluster ({cluster}, the log was read from {recorded_cluster})"
    short = sorted((p, n, ends[p]) for p, n in read.items() if p in ends and ends[p] < n)
    if short:
        return "the log ends before what was read from it: " + ", ".join(
            f"partition {p} ends at {end}, read up to {n}" for p, n, end in short)
    return None
