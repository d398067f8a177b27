"""The Faust app of Warroom's stream processors, declared once from Settings.

`create_app(settings)` declares the app, its topics and the `incidents` table; nothing
connects until a worker starts it. Agents are attached by their own modules
(`streams.worker.install_decider`), so tests and benchmarks can build the same topology.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust
from faust.types import TableT, TopicT

from foundation.settings import Settings
from streams.codec import EVENT, INCIDENT_STATE, OUTCOME, register_codecs
from streams.fetch_wait import use_fetch_wait

log = logging.getLogger(__name__)


SESSION_TIMEOUT_S = 10.0
PRODUCER_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True)
class Streams:
    """The app and everything declared on it."""

    settings: Settings
    app: faust.App
    commands: TopicT  # raw bytes: a message we cannot decode still reaches the DLQ intact
    events: TopicT
    outcomes: TopicT
    dlq: TopicT
    incidents: TableT  # incident id -> streams.incident.Applied


def broker_url(bootstrap: str) -> str:
    """`host:port[,host:port]` as Faust's broker URL list."""
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def create_app(settings: Settings) -> Streams:
    """Declare the app, topics and table for `settings`; makes no connection."""
    register_codecs()
    topics = settings.topics
    web_port = settings.worker.web_port
    app = faust.App(
        f"{topics.prefix}-streams",
        broker=broker_url(settings.kafka.bootstrap),
        broker_client_id=settings.kafka.client_id,
        # A restarted worker gets the partitions of a killed one after the session timeout.
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_request_timeout=max(settings.kafka.request_timeout_s, SESSION_TIMEOUT_S),
        producer_request_timeout=settings.kafka.request_timeout_s,
        store=settings.worker.table_store,
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        # Large batches: with the 16 KiB default a full batch waits for the request in
        # flight on its partition, which serialises a batch of events into round trips.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # As large as the topics accept (foundation.topics), never larger.
        producer_max_request_size=settings.kafka.max_message_bytes,
    )
    use_fetch_wait(app)  # before the topics below create the app's transport
    n = topics.partitions
    commands = app.topic(
        topics.name("commands"), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=n,
    )
    events = app.topic(
        topics.name("events"), key_serializer="raw", value_serializer=EVENT, partitions=n
    )
    outcomes = app.topic(
        topics.name("outcomes"), key_serializer="raw", value_serializer=OUTCOME, partitions=n
    )
    dlq = app.topic(topics.name("dlq"), key_serializer="raw", value_serializer="raw", partitions=n)
    incidents = declare_table(app, "incidents", INCIDENT_STATE, n)
    return Streams(settings, app, commands, events, outcomes, dlq, incidents)


def declare_table(app: faust.App, name: str, codec: str, partitions: int) -> TableT:
    """A table of str keys whose values `codec` (a registered name) encodes.

    Faust derives a changelog's codecs from faust.Record types; our values are pydantic
    models, so the changelog topic is declared here as Faust would, with our codec named."""
    changelog = app.topic(
        f"{app.conf.id}-{name}-changelog", key_type=str, key_serializer="raw",
        value_serializer=codec, partitions=partitions, compacting=True, acks=False,
        internal=True, maxsize=131_072, allow_empty=True,
    )
    table = app.Table(name, partitions=partitions, default=None, key_type=str,
                      changelog_topic=changelog)
    table.key_serializer, table.value_serializer = "raw", codec  # for writes
    return table
