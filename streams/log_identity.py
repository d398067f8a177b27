"""Which log a reader is reading, and whether it went back.

A broker can come back with less log than its readers have already read: the embedded
Tansu (memory-only) restarted empty, an Apache Kafka whose storage was replaced, a topic
deleted and created again. Positions read before then name records that are gone or,
worse, other records. Two signs tell, and every reader checks both:

- the cluster id changed: each Tansu start has its own (`warroom.servers.start_tansu`),
  Apache Kafka keeps the one its storage was formatted with;
- a partition ends before a position already read from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest


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
