"""`warroom eval petshop DIR`: every case of a scenario through the real pipeline (SPEC §14).

1. The scenario's series are backfilled into a TSDB (`promtool tsdb create-blocks-from
   openmetrics`), each case in its own days with its normal rows as the baseline right
   before it (`dataset.place`), and Debian's Prometheus serves it.
2. The worker runs, as `warroom worker` on an embedded Tansu broker (as `warroom up`
   does), with the eval's own settings (`eval_settings`): Prometheus as the one source,
   one signal per PetShop metric, `graph.csv` as the topology.
3. Each case's symptom is published to the alerts topic as a producer would: service
   `target.node`, starting at `target.timestamp` (moved with the case). Intake opens its
   incident, the decider starts the run, correlation examines the graph below it.
4. The hypotheses of each incident's `CorrelationCompleted`, read from the events topic,
   are scored against `target.json`'s root cause. A case that fails or times out is a
   miss, reported, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from contracts.alerts import Alert
from contracts.events import EventEnvelope
from streams.alert_reading import group_key
from streams.correlation_agents import opening_run_id
from warroom.petshop.backfill import backfill
from warroom.petshop.dataset import Case, Placement, Scenario, Table, place, read_scenario, read_table, series, series_name
from warroom.servers import free_port, start_prometheus, start_tansu
from warroom.devstack import Component
from warroom.servers.process import Server, log_tail
from foundation.settings import Settings, load_settings
from foundation.topics import ensure_topics
from foundation.topology import ServiceGraph, candidates, read_file

CASE_LABEL = "petshop_case"
STEP = "300s"
RUN_DEADLINE_S = 120
WAIT_PER_CASE_S = 10
WAIT_BASE_S = 180
"""Bounded wait for every case's CorrelationCompleted: the base plus this much per case."""


@dataclass(frozen=True)
class CaseResult:
    case: Case
    ranked: list[str]
    error: str | None = None

    @property
    def rank(self) -> int | None:
        """1-based rank of the true cause among the ranked services, if there."""
        return self.ranked.index(self.case.root_cause) + 1 if self.case.root_cause in self.ranked else None


# --- the eval's own settings ------------------------------------------------------------------


def signals_for(tables: list[Table]) -> dict[str, tuple[str, str, str]]:
    """{signal: (series name, statistic, worse)}: one signal per metric of the scenario,
    read at its `Average` (else `Sum`, else its first statistic); availability is worse
    going down, everything else going up."""
    statistics: dict[str, list[str]] = {}
    for table in tables:
        for column in table.columns:
            known = statistics.setdefault(column.metric, [])
            if column.statistic not in known:
                known.append(column.statistic)
    chosen = {}
    for metric, stats in sorted(statistics.items()):
        statistic = next((s for s in ("Average", "Sum") if s in stats), stats[0])
        chosen[metric] = (series_name(metric), statistic, "down" if metric == "availability" else "up")
    return chosen


def depth_covering(graph: ServiceGraph, symptoms: set[str]) -> int:
    """Hops enough to reach every service below any of `symptoms`."""
    callees = graph.callees()
    every = len(graph.nodes) + 1
    return max((depth for symptom in symptoms for _, depth in candidates(callees, symptom, every, every)), default=1)


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string or list is a TOML one


def eval_settings(*, scenario: Scenario, signals: dict[str, tuple[str, str, str]], prometheus_url: str,
                  bootstrap: str, data_dir: Path, prefix: str) -> str:
    """The eval's settings as a warroom.toml (`--verbose` prints them)."""
    graph = ServiceGraph.of(read_file(scenario.graph))
    depth = min(max(depth_covering(graph, {c.node for c in scenario.cases}), 1), 50)
    lines = [
        f"data_dir = {_toml(str(data_dir))}",
        'log_level = "info"',
        "[kafka]", f"bootstrap = {_toml(bootstrap)}",
        "[topics]", f"prefix = {_toml(prefix)}", "partitions = 3",
        "[intake]", f'group_by = ["service", "{CASE_LABEL}"]   # one incident per case',
        "[correlation]", 'sources = ["prometheus"]',
        'window = "10m"', 'settle = "10m"', 'baseline = "24h"',
        f"run_deadline_s = {RUN_DEADLINE_S}", "timeout_s = 30", "attempts = 3",
        "[correlation.prometheus]", f"url = {_toml(prometheus_url)}", 'service_label = "service"',
        f'step = "{STEP}"   # PetShop rows are five minutes apart', 'window = "5m"', "concurrency = 4",
        'volume = "requests"   # the Sum of requests per five minutes',
    ]
    for name, (metric, statistic, worse) in signals.items():
        query = f'{metric}{{{{{{label}}="{{service}}",statistic="{statistic}"}}}}'
        lines += [f"[correlation.prometheus.signals.{name}]", f"query = {_toml(query)}", f'worse = "{worse}"']
        if name == "availability":
            lines.append("best = 100   # percent")
    lines += ["[topology]", f"file = {_toml(str(scenario.graph.resolve()))}", "discovery = []",
              f"max_depth = {depth}", f"max_candidates = {max(len(graph.nodes), 1)}"]
    return "\n".join(lines) + "\n"


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Running:
    prometheus: Server
    kafka: Server
    worker: subprocess.Popen
    settings: Settings
    worker_log: Path


@contextlib.contextmanager
def running_stack(scenario: Scenario, signals: dict[str, tuple[str, str, str]], work: Path,
                  say: Callable[[str], None], verbose: bool) -> Iterator[Running]:
    """Prometheus over the backfilled TSDB, a Tansu broker and the worker (a component as
    `warroom up` runs it); all stopped after."""
    servers: list[Server] = []
    worker: Component | None = None
    try:
        prometheus = start_prometheus(work / "prometheus", scrape_targets=[], retention="100y")
        servers.append(prometheus)
        kafka = start_tansu(work / "kafka", port=free_port())
        servers.append(kafka)
        config = work / "warroom.toml"
        config.write_text(eval_settings(scenario=scenario, signals=signals, prometheus_url=prometheus.url,
                                        bootstrap=kafka.bootstrap, data_dir=work / "worker",
                                        prefix=f"petshop-{uuid.uuid4().hex[:8]}"))
        if verbose:
            say(f"settings ({config}):\n{config.read_text()}")
        settings = load_settings(config)
        asyncio.run(ensure_topics(settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
        env |= {"WARROOM_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        worker = Component("worker", [sys.executable, "-m", "warroom", "worker"], env, work / "worker.log")
        worker.start()
        assert worker.process is not None
        say(f"Prometheus {prometheus.url}, broker {kafka.bootstrap} (Tansu), worker pid {worker.process.pid}")
        yield Running(prometheus, kafka, worker.process, settings, worker.log_path)
    finally:
        if worker is not None:
            worker.stop()
        for server in reversed(servers):
            server.stop()


# --- publishing and waiting --------------------------------------------------------------------


def symptom_alert(placement: Placement) -> Alert:
    case = placement.case
    return Alert(
        status="firing",
        labels={"alertname": f"PetShop{case.metric.capitalize()}", "service": case.node,
                "signal": case.metric, "statistic": case.statistic, CASE_LABEL: case.name, "severity": "high"},
        annotations={"summary": f"{case.metric} ({case.statistic}) of {case.node} is off"},
        starts_at=datetime.fromtimestamp(placement.alert_at, UTC), source="warroom-eval")


async def publish(settings: Settings, placements: list[Placement]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                                client_id="warroom-eval")
    await producer.start()
    try:
        for placement in placements:
            alert = symptom_alert(placement)
            await producer.send_and_wait(settings.topics.name("alerts"), alert.model_dump_json().encode(),
                                         key=group_key(alert.labels, settings.intake).encode())
    finally:
        await producer.stop()


@dataclass
class Watch:
    """The events topic, read from the start: which incident is which case, and the
    hypotheses of each opening run once it completes."""

    case_of: dict[uuid.UUID, str] = field(default_factory=dict)
    seen: dict[str, list[str]] = field(default_factory=dict)  # case → event types, to report a miss
    completed: dict[str, list[str]] = field(default_factory=dict)  # case → ranked services

    def add(self, event: EventEnvelope) -> str | None:
        """Fold one event; the case's name when this event completed it."""
        data = event.data
        if event.type == "IncidentOpened" and CASE_LABEL in data.labels:
            self.case_of[event.incident_id] = data.labels[CASE_LABEL]
        case = self.case_of.get(event.incident_id)
        if case is None:
            return None
        self.seen.setdefault(case, []).append(event.type)
        if event.type == "CorrelationCompleted" and data.run_id == opening_run_id(event.incident_id) \
                and case not in self.completed:
            ranked: list[str] = []
            for hypothesis in data.hypotheses:
                service = getattr(hypothesis, "service", None)
                if service and service not in ranked:
                    ranked.append(service)
            self.completed[case] = ranked
            return case
        return None


async def watch_until_done(settings: Settings, placements: list[Placement], worker: subprocess.Popen,
                           on_done: Callable[[str], None], timeout_s: float) -> Watch:
    """Publish the symptoms and read the events until every case completed or the bound."""
    watch = Watch()
    wanted = {p.case.name for p in placements}
    consumer = AIOKafkaConsumer(settings.topics.name("events"), bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                metadata_max_age_ms=1000)
    await consumer.start()
    try:
        await publish(settings, placements)
        deadline = time.monotonic() + timeout_s
        while wanted - set(watch.completed) and time.monotonic() < deadline:
            if worker.poll() is not None:
                break
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    try:
                        event = EventEnvelope.model_validate_json(record.value)
                    except ValidationError:
                        continue
                    done = watch.add(event)
                    if done is not None and done in wanted:
                        on_done(done)
    finally:
        await consumer.stop()
    return watch


# --- scoring and output ------------------------------------------------------------------------


def scores(results: list[CaseResult]) -> tuple[dict[str, dict[str, float | int]], dict[str, float | int]]:
    """Top-1 and top-3 recall of the root cause, per symptom metric and overall."""
    def of(group: list[CaseResult]) -> dict[str, float | int]:
        n = len(group)
        hits = [r.rank for r in group]
        return {"n": n, "top1": round(sum(1 for k in hits if k == 1) / n, 3) if n else 0.0,
                "top3": round(sum(1 for k in hits if k is not None and k <= 3) / n, 3) if n else 0.0}
    metrics = sorted({r.case.metric for r in results})
    return {m: of([r for r in results if r.case.metric == m]) for m in metrics}, of(results)


def report_json(directory: Path, results: list[CaseResult]) -> dict:
    """Exactly the object of SPEC §14."""
    per_metric, overall = scores(results)
    return {"dataset": str(directory),
            "cases": [{"case": r.case.name, "metric": r.case.metric, "root_cause": r.case.root_cause,
                       "ranked": r.ranked} for r in results],
            "scores": per_metric, "overall": overall}


def report_table(directory: Path, results: list[CaseResult], elapsed_s: float) -> str:
    per_metric, overall = scores(results)
    width = max([len(r.case.name) for r in results] + [4])
    cause = max([len(r.case.root_cause) for r in results] + [10])
    lines = [f"PetShop scenario {directory}: {len(results)} case(s) in {elapsed_s:.0f} s", "",
             f"{'case':<{width}}  {'metric':<12}  {'root cause':<{cause}}  rank  top of the ranking"]
    for r in results:
        rank = str(r.rank) if r.rank else "—"
        top = ", ".join(r.ranked[:3]) if r.ranked else f"(none: {r.error})" if r.error else "(none)"
        lines.append(f"{r.case.name:<{width}}  {r.case.metric:<12}  {r.case.root_cause:<{cause}}  {rank:>4}  {top}")
    lines.append("")
    for metric, score in [*per_metric.items(), ("overall", overall)]:
        lines.append(f"{metric:<12}  n={score['n']:<3}  top-1 {score['top1']:.3f}  top-3 {score['top3']:.3f}")
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------------------


def evaluate(directory: Path, *, limit: int | None = None, verbose: bool = False, keep: bool = False,
             say: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Run the scenario in `directory` (its first `limit` cases) through the pipeline."""
    say = say or (lambda text: print(f"eval: {text}", file=sys.stderr, flush=True))
    scenario = read_scenario(directory)
    cases = scenario.cases[:limit] if limit else scenario.cases
    scenario = Scenario(scenario.directory, scenario.graph, scenario.normal, tuple(cases))
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="warroom-eval-"))
    try:
        normal = read_table(scenario.normal)
        placements = place(normal, cases)
        signals = signals_for([normal, *(p.issue for p in placements)])
        say(f"{len(cases)} case(s) of {directory}; signals: "
            + ", ".join(f"{name} ({metric}, {stat}, worse {worse})" for name, (metric, stat, worse) in signals.items()))
        filled = backfill(series(normal, placements), work, work / "prometheus" / "tsdb")
        say(f"backfilled {filled.series} series, {filled.samples:,} samples in {time.monotonic() - began:.1f} s")
        with running_stack(scenario, signals, work, say, verbose) as stack:
            done = 0

            def finished(name: str) -> None:
                nonlocal done
                done += 1
                say(f"[{done}/{len(cases)}] {name} correlated ({time.monotonic() - began:.0f} s)")

            watch = asyncio.run(watch_until_done(stack.settings, placements, stack.worker, finished,
                                                 WAIT_BASE_S + WAIT_PER_CASE_S * len(cases)))
            results = []
            for case in cases:
                if case.name in watch.completed:
                    results.append(CaseResult(case, watch.completed[case.name]))
                    continue
                why = ("the worker exited" if stack.worker.poll() is not None
                       else "no CorrelationCompleted in time")
                error = f"{why}; events seen: {', '.join(watch.seen.get(case.name, [])) or 'none'}"
                say(f"{case.name}: counted as a miss: {error}")
                results.append(CaseResult(case, [], error))
            if stack.worker.poll() is not None or any(r.error for r in results):
                say(f"worker log {stack.worker_log}:\n{log_tail(stack.worker_log)}")
        return results
    finally:
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
