"""The decider worker as a child process, what it writes collected in the background,
and a client that sends it commands: shared by the worker's integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.commands import CommandBase, OpenIncident
from contracts.common import Actor
from contracts.events import EventEnvelope
from contracts.outcomes import CommandOutcome
from harness.waiting import wait_for, wait_for_async
from foundation.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ALICE = Actor(kind="user", id="alice")


class Worker:
    """`python -m streams.worker` as a child process, configured through WARROOM_* variables."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "WARROOM_KAFKA__BOOTSTRAP": self.settings.kafka.bootstrap,
            "WARROOM_TOPICS__PREFIX": self.settings.topics.prefix,
            "WARROOM_TOPICS__PARTITIONS": str(self.settings.topics.partitions),
            "WARROOM_DATA_DIR": str(self.settings.data_dir),
            "WARROOM_LOG_LEVEL": "info",
            "WARROOM_CORRELATION__ON_OPEN": str(self.settings.correlation.on_open).lower(),
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "streams.worker"], cwd=ROOT,
                                        env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = wait_for(lambda: self.process.poll() is not None, timeout=60,
                        message="worker exiting") and self.process.returncode
        return code

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


class Topics:
    """Everything on the events, outcomes and DLQ topics, collected in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events: dict[uuid.UUID, list[EventEnvelope]] = defaultdict(list)
        self.outcomes: dict[uuid.UUID, CommandOutcome] = {}
        self.dead_letters: list[dict] = []

    async def run(self) -> None:
        names = self.settings.topics
        consumer = AIOKafkaConsumer(
            names.name("events"), names.name("outcomes"), names.name("dlq"),
            bootstrap_servers=self.settings.kafka.bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, metadata_max_age_ms=1000)
        await consumer.start()
        try:
            while True:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    for record in records:
                        self._collect(tp.topic, record.value)
        finally:
            await consumer.stop()

    def _collect(self, topic: str, value: bytes) -> None:
        names = self.settings.topics
        if topic == names.name("events"):
            event = EventEnvelope.model_validate_json(value)
            self.events[event.incident_id].append(event)
        elif topic == names.name("outcomes"):
            answer = CommandOutcome.model_validate_json(value)
            self.outcomes[answer.command_id] = answer
        else:
            self.dead_letters.append(json.loads(value))

    def log_of(self, incident: uuid.UUID) -> list[EventEnvelope]:
        """The incident's events as a reader keeps them: an exact version repeat dropped."""
        kept: dict[int, EventEnvelope] = {}
        for event in self.events[incident]:
            kept.setdefault(event.version, event)
        return [kept[v] for v in sorted(kept)]

    async def outcome(self, command: CommandBase, timeout: float = 60) -> CommandOutcome:
        return await wait_for_async(lambda: self.outcomes.get(command.command_id),
                                    timeout=timeout, message=f"outcome of {command.type}")


class Client:
    def __init__(self, producer: AIOKafkaProducer, settings: Settings, topics: Topics) -> None:
        self.producer = producer
        self.topic = settings.topics.name("commands")
        self.topics = topics

    async def send_raw(self, value: bytes, key: bytes | None) -> None:
        await self.producer.send_and_wait(self.topic, value, key=key)

    async def send(self, command: CommandBase) -> None:
        await self.send_raw(command.model_dump_json(by_alias=True).encode(),
                            str(command.incident_id).encode())

    async def ask(self, command: CommandBase) -> CommandOutcome:
        await self.send(command)
        return await self.topics.outcome(command)


def command(kind: type[CommandBase], incident: uuid.UUID, **fields) -> CommandBase:
    return kind(command_id=uuid.uuid4(), incident_id=incident, actor=ALICE,
                issued_at=datetime.now(UTC), **fields)


def opening(incident: uuid.UUID) -> CommandBase:
    return command(OpenIncident, incident, title="checkout 5xx", service="checkout",
                   severity="high")
