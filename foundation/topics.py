"""The Kafka topics Warroom owns, created idempotently at start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from foundation.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

# The events topic is the system of record: it never expires and is never compacted.
_EVENTS_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
# Outcomes only serve gateways waiting for an answer; a day is plenty.
_OUTCOMES_CONFIG = {"retention.ms": str(24 * 3600 * 1000)}
# The rules of the silences, derived from their streams by the decider: only the latest
# of each matters, and every intake reads them all, so one compacted partition.
_SILENCES_CONFIG = {"cleanup.policy": "compact"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic with its partition count and configuration.

    Each accepts records as large as our producers may send (`kafka.max_message_bytes`),
    so no record of ours is refused by the broker, and none larger reaches us."""
    t = settings.topics
    configs = {"events": _EVENTS_CONFIG, "outcomes": _OUTCOMES_CONFIG, "silences": _SILENCES_CONFIG}
    size = {"max.message.bytes": str(settings.kafka.max_message_bytes)}
    return [
        NewTopic(
            name=t.name(kind),
            num_partitions=1 if kind == "silences" else t.partitions,
            replication_factor=t.replication_factor,
            topic_configs={**configs.get(kind, {}), **size},
        )
        for kind in ("alerts", "commands", "events", "dlq", "outcomes", "silences")
    ]


async def ensure_topics(settings: Settings, *, timeout_s: float = 60) -> list[str]:
    """Create missing topics; return the names that were created. Retries until the broker answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap,
            client_id=f"{settings.kafka.client_id}-admin",
            request_timeout_ms=int(settings.kafka.request_timeout_s * 1000),
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
            if missing:
                response = await admin.create_topics(missing)
                for name, code, *_ in response.topic_errors:
                    # 36 = TOPIC_ALREADY_EXISTS: a concurrent process won the race.
                    if code not in (0, 36):
                        raise RuntimeError(f"cannot create topic {name}: Kafka error code {code}")
            return [spec.name for spec in missing]
        except (KafkaError, OSError) as err:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka.bootstrap} unreachable: {err}") from err
            log.info("waiting for Kafka at %s: %s", settings.kafka.bootstrap, err)
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def main_with_topics(name: str, run: Callable[[Settings], None]) -> None:
    """A stream process's `python -m` entry: settings from the environment, the topics
    ensured, then `run`; settings that do not load end the process with their message."""
    try:
        settings = load_settings()
        asyncio.run(ensure_topics(settings))
        run(settings)
    except SettingsError as err:
        raise SystemExit(f"{name}: {err}") from None
