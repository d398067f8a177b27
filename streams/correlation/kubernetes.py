"""Kubernetes through kubernetes-asyncio: pods not ready, crash loops, OOM kills,
restarts, warning events and rollouts of each service a run examines, within the run's
analysis window.

The interpretation works on the API's own JSON (PodList, EventList, ReplicaSetList), so
it is pure and tested with recordings in the documented format.
"""

from __future__ import annotations

import json
import os
from functools import partial
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp

from streams.correlation.model import Finding, IncidentFacts, Scope, SourceReport, settle
from streams.correlation.resilience import Calls, CircuitBreaker, QueryRejected, SourceUnreachable
from streams.correlation.templates import TemplateError, render
from foundation.settings import KubernetesSource as KubernetesSettings

REVISION = "deployment.kubernetes.io/revision"


def timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp of the API (`...Z`), or None."""
    return datetime.fromisoformat(value) if value else None


def _in(moment: datetime | None, since: datetime, until: datetime) -> bool:
    return moment is not None and since <= moment <= until


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status", {})
    return status.get("initContainerStatuses", []) + status.get("containerStatuses", [])


def pod_findings(pods: list[dict[str, Any]], since: datetime, until: datetime) -> list[Finding]:
    """Not-ready pods, crash loops, OOM kills and restarts between `since` and `until`."""
    not_ready, crash_loop, oom, restarts = [], [], [], []
    for pod in pods:
        name, status = pod["metadata"]["name"], pod.get("status", {})
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
        if status.get("phase") != "Succeeded" and (ready is None or ready.get("status") != "True"):
            not_ready.append({"pod": name, "phase": status.get("phase"),
                              "reason": (ready or {}).get("reason"),
                              "since": (ready or {}).get("lastTransitionTime")})
        for container in _statuses(pod):
            waiting = container.get("state", {}).get("waiting") or {}
            last = container.get("lastState", {}).get("terminated") or {}
            now_terminated = container.get("state", {}).get("terminated") or {}
            entry = {"pod": name, "container": container.get("name"),
                     "restarts": container.get("restartCount", 0),
                     "last_exit": last.get("reason"), "exit_code": last.get("exitCode"),
                     "finished_at": last.get("finishedAt")}
            if waiting.get("reason") == "CrashLoopBackOff":
                crash_loop.append(entry | {"message": waiting.get("message")})
            for terminated in (now_terminated, last):
                if terminated.get("reason") == "OOMKilled":
                    oom.append(entry | {"finished_at": terminated.get("finishedAt")})
                    break
            if entry["restarts"] > 0 and _in(timestamp(last.get("finishedAt")), since, until):
                restarts.append(entry)
    findings = []

    def when(entries: list[dict[str, Any]], key: str) -> datetime | None:
        return _earliest(t for t in (timestamp(e.get(key)) for e in entries) if _in(t, since, until))

    if crash_loop:
        findings.append(Finding("crash_loop", f"{len(crash_loop)} container(s) in CrashLoopBackOff: "
                                + ", ".join(f"{e['pod']}/{e['container']}" for e in crash_loop[:5]),
                                0.8, {"containers": crash_loop}, when(crash_loop, "finished_at")))
    if oom:
        findings.append(Finding("oom_killed", f"{len(oom)} container(s) OOMKilled: "
                                + ", ".join(f"{e['pod']}/{e['container']}" for e in oom[:5]),
                                0.8, {"containers": oom}, when(oom, "finished_at")))
    if restarts:
        count = sum(e["restarts"] for e in restarts)
        findings.append(Finding("container_restarts",
                                f"{len(restarts)} container(s) restarted in the window ({count} restarts in total)",
                                0.6, {"containers": restarts}, when(restarts, "finished_at")))
    if not_ready:
        findings.append(Finding("pods_not_ready", f"{len(not_ready)} of {len(pods)} pod(s) not ready: "
                                + ", ".join(e["pod"] for e in not_ready[:5]),
                                0.55 + 0.3 * len(not_ready) / len(pods), {"pods": not_ready},
                                when(not_ready, "since")))
    return findings


def event_time(event: dict[str, Any]) -> datetime | None:
    """When an event last happened: lastTimestamp (core/v1 shape), else the series'
    lastObservedTime or eventTime (events.k8s.io shape), else its creation."""
    return timestamp(event.get("lastTimestamp") or (event.get("series") or {}).get("lastObservedTime")
                     or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp"))


def event_findings(events: list[dict[str, Any]], objects: set[str], since: datetime,
                   until: datetime) -> list[Finding]:
    """Warning events about `objects` (names of the service's pods, replica sets and
    deployments) that happened in the window, grouped by reason."""
    relevant = [e for e in events if e.get("type") == "Warning"
                and e.get("involvedObject", {}).get("name") in objects
                and _in(event_time(e), since, until)]
    if not relevant:
        return []
    by_reason: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    for event in relevant:
        reason = event.get("reason") or "Unknown"
        by_reason[reason] += event.get("count") or (event.get("series") or {}).get("count") or 1
        involved = event["involvedObject"]
        examples.setdefault(reason, {"object": f"{involved.get('kind')}/{involved['name']}",
                                     "message": (event.get("message") or "")[:300]})
    first = _earliest(timestamp(e.get("firstTimestamp") or e.get("eventTime")) or event_time(e) for e in relevant)
    summary = ", ".join(f"{reason} ×{count}" for reason, count in by_reason.most_common(5))
    return [Finding("warning_events", f"{sum(by_reason.values())} warning event(s): {summary}", 0.5,
                    {"reasons": dict(by_reason.most_common()), "examples": examples},
                    first if _in(first, since, until) else None)]


def rollout_findings(replica_sets: list[dict[str, Any]], since: datetime, until: datetime) -> list[Finding]:
    """A deployment whose newest revision's ReplicaSet was created in the window."""
    by_deployment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rs in replica_sets:
        owner = next((o["name"] for o in rs["metadata"].get("ownerReferences", [])
                      if o.get("kind") == "Deployment"), None)
        if owner and REVISION in rs["metadata"].get("annotations", {}):
            by_deployment[owner].append(rs)
    findings = []
    for deployment, sets in sorted(by_deployment.items()):
        sets.sort(key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))
        newest = sets[-1]
        created = timestamp(newest["metadata"].get("creationTimestamp"))
        if not _in(created, since, until):
            continue
        previous = sets[-2] if len(sets) > 1 else None
        evidence = {"deployment": deployment, "replica_set": newest["metadata"]["name"],
                    "revision": newest["metadata"]["annotations"][REVISION],
                    "images": _images(newest),
                    "replicas": newest.get("status", {}).get("replicas"),
                    "ready_replicas": newest.get("status", {}).get("readyReplicas", 0)}
        if previous is not None:
            evidence |= {"previous_revision": previous["metadata"]["annotations"][REVISION],
                         "previous_images": _images(previous)}
        changed = [i for i in evidence["images"] if i not in evidence.get("previous_images", [])]
        summary = (f"deployment {deployment} rolled out revision {evidence['revision']}"
                   + (f" ({', '.join(changed)})" if changed else ""))
        findings.append(Finding("rollout", summary, 0.8, evidence, created, key=deployment))
    return findings


def _images(rs: dict[str, Any]) -> list[str]:
    containers = rs.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return [c.get("image", "") for c in containers]


def owned_names(pods: list[dict[str, Any]], replica_sets: list[dict[str, Any]]) -> set[str]:
    """Names whose events concern the service: its pods, replica sets, deployments."""
    names = {p["metadata"]["name"] for p in pods} | {rs["metadata"]["name"] for rs in replica_sets}
    for item in [*pods, *replica_sets]:
        names |= {o["name"] for o in item["metadata"].get("ownerReferences", [])}
    return names


class KubernetesSource:
    """Reads pods, events and replica sets of the service's label selector."""

    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings, breaker: CircuitBreaker, timeout_s: float) -> None:
        self.settings = settings
        self.breaker = breaker
        self.timeout_s = timeout_s
        self._api: Any = None

    def unavailable_reason(self) -> str | None:
        s = self.settings
        if not (s.enabled or s.host or s.kubeconfig):
            return ("not configured: set correlation.kubernetes.enabled (in cluster), "
                    "host or kubeconfig")
        return None

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _client(self) -> Any:
        # Imported here: the client library is heavy, and only a configured source needs it.
        from kubernetes_asyncio import client, config
        if self._api is None:
            configuration = client.Configuration()
            try:
                if self.settings.kubeconfig:
                    await config.load_kube_config(config_file=os.path.expanduser(self.settings.kubeconfig),
                                                  context=self.settings.context,
                                                  client_configuration=configuration)
                elif not self.settings.host:
                    config.load_incluster_config(client_configuration=configuration)
            except Exception as exc:  # ConfigException, a missing or broken file
                raise QueryRejected(f"cannot load Kubernetes configuration: {exc}") from None
            if self.settings.host:
                configuration.host = self.settings.host.rstrip("/")
            self._api = client.ApiClient(configuration)
        return self._api

    async def _list(self, path: str, call: Any, **params: str) -> list[dict[str, Any]]:
        try:
            response = await call(self.settings.namespace, _preload_content=False,
                                  _request_timeout=self.timeout_s, **params)
            body = await response.read()
            response.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnreachable(f"Kubernetes API unreachable for GET {path}: "
                                    f"{type(exc).__name__}: {exc}") from None
        status = response.status
        if status >= 500 or status == 429:
            raise SourceUnreachable(f"Kubernetes API answered HTTP {status} to GET {path}: {_message(body)}")
        if status >= 400:
            raise QueryRejected(f"Kubernetes API refused GET {path}: HTTP {status}: {_message(body)}")
        try:
            return json.loads(body).get("items") or []
        except (ValueError, AttributeError):
            raise QueryRejected(f"GET {path} did not answer a Kubernetes list") from None

    async def investigate(self, incident: IncidentFacts, scope: Scope, calls: Calls) -> SourceReport:
        from kubernetes_asyncio import client
        settings, window = self.settings, scope.window
        try:
            selectors = {service: render(settings.label_selector, service=service) for service in scope.services}
        except TemplateError as exc:
            return SourceReport("failed", [], [str(exc)])
        try:
            api = await self._client()
        except QueryRejected as exc:
            return SourceReport("failed", [], [str(exc)])
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        ns = settings.namespace
        events_path = f"/api/v1/namespaces/{ns}/events?{urlencode({'fieldSelector': 'type=Warning'})}"
        findings: list[Finding] = []
        no_data: list[str] = []
        try:
            listed: dict[str, list[dict[str, Any]]] = {}
            for service, selector in selectors.items():
                pods_path = f"/api/v1/namespaces/{ns}/pods?{urlencode({'labelSelector': selector})}"
                rs_path = f"/apis/apps/v1/namespaces/{ns}/replicasets?{urlencode({'labelSelector': selector})}"
                for name, path, method in (("pods", pods_path, core.list_namespaced_pod),
                                           ("replicasets", rs_path, apps.list_namespaced_replica_set)):
                    calls.note(f"GET {path}")
                    listed[name] = await calls.call(f"kubernetes {name}", partial(
                        self._list, path, method, label_selector=selector))
                if "events" not in listed:  # namespace-wide: asked once, read for every service
                    calls.note(f"GET {events_path}")
                    listed["events"] = await calls.call("kubernetes events", partial(
                        self._list, events_path, core.list_namespaced_event, field_selector="type=Warning"))
                if not listed["pods"]:
                    if service == scope.symptom:  # a dependency may well not run in this cluster
                        no_data.append(f"no pods match label selector {selector!r} in namespace {ns}: GET {pods_path}")
                    continue
                found = (rollout_findings(listed["replicasets"], window.start, window.end)
                         + pod_findings(listed["pods"], window.start, window.end)
                         + event_findings(listed["events"], owned_names(listed["pods"], listed["replicasets"]),
                                          window.start, window.end))
                for finding in found:
                    path = {"rollout": rs_path, "warning_events": events_path}.get(finding.kind, pods_path)
                    finding.evidence.update(service=service, namespace=ns, label_selector=selector,
                                            window=window.interval(), query=f"GET {path}")
                    findings.append(replace(finding, service=service,
                                            key=f"{service}:{finding.key}" if finding.key else service))
        except QueryRejected as exc:
            return SourceReport("failed", findings, [str(exc)])
        return settle(no_data, [], findings, answered=1)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:300]
