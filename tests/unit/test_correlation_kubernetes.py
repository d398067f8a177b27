"""Reading pods, events and replica sets of the recordings (real API JSON)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harness.replay_servers import kubernetes_route, recording
from streams.correlation import kubernetes

NOW = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=15)


def _items(kind: str, selector: str = "app=checkout", fields: str = "") -> list[dict]:
    path = {"pods": "/api/v1/namespaces/shop/pods", "events": "/api/v1/namespaces/shop/events",
            "replicasets": "/apis/apps/v1/namespaces/shop/replicasets"}[kind]
    status, body = kubernetes_route(path, {"labelSelector": selector, "fieldSelector": fields})
    assert status == 200
    return body["items"]


def _by_kind(findings: list) -> dict:
    return {f.kind: f for f in findings}


def test_pods_crash_looping_oom_killed_restarted_and_not_ready() -> None:
    found = _by_kind(kubernetes.pod_findings(_items("pods"), SINCE, NOW))
    assert set(found) == {"crash_loop", "oom_killed", "container_restarts", "pods_not_ready"}
    assert found["crash_loop"].summary == "1 container(s) in CrashLoopBackOff: checkout-7d9f8b6c5-x2k8p/checkout"
    assert found["oom_killed"].changed_at == datetime(2024, 5, 1, 9, 59, 58, tzinfo=UTC)
    assert found["container_restarts"].changed_at == datetime(2024, 5, 1, 9, 58, 5, tzinfo=UTC)
    assert found["container_restarts"].evidence["containers"][0]["restarts"] in (4, 1)
    not_ready = found["pods_not_ready"]
    assert not_ready.summary == "1 of 2 pod(s) not ready: checkout-7d9f8b6c5-x2k8p"
    assert not_ready.changed_at == datetime(2024, 5, 1, 9, 58, 12, tzinfo=UTC)


def test_healthy_pods_give_no_findings() -> None:
    healthy = [p for p in _items("pods") if p["metadata"]["name"].endswith("q7m4z")]
    # Its one restart is older than a narrow window.
    assert kubernetes.pod_findings(healthy, NOW - timedelta(minutes=2), NOW) == []


def test_a_pending_unschedulable_pod_is_not_ready() -> None:
    [pod] = _items("pods", "app=payments")
    [finding] = kubernetes.pod_findings([pod], SINCE, NOW)
    assert finding.kind == "pods_not_ready" and finding.evidence["pods"][0]["phase"] == "Pending"


def test_rollout_of_a_new_revision_in_the_window() -> None:
    [rollout] = kubernetes.rollout_findings(_items("replicasets"), SINCE, NOW)
    assert rollout.kind == "rollout" and rollout.key == "checkout"
    assert rollout.changed_at == datetime(2024, 5, 1, 9, 57, 40, tzinfo=UTC)
    assert rollout.summary == ("deployment checkout rolled out revision 4 "
                               "(registry.example.com/shop/checkout:2.4.0)")
    assert rollout.evidence["previous_revision"] == "3"
    assert rollout.evidence["previous_images"] == ["registry.example.com/shop/checkout:2.3.1"]


def test_no_rollout_outside_the_window() -> None:
    assert kubernetes.rollout_findings(_items("replicasets"), NOW - timedelta(minutes=1), NOW) == []


def test_warning_events_about_the_service_in_the_window() -> None:
    pods, sets = _items("pods"), _items("replicasets")
    events = _items("events", selector="", fields="type=Warning")
    assert {e["type"] for e in events} == {"Warning"}  # the server filtered by field
    [finding] = kubernetes.event_findings(events, kubernetes.owned_names(pods, sets), SINCE, NOW)
    # The payments pod's event is someone else's; the liveness failure is from yesterday.
    assert finding.evidence["reasons"] == {"BackOff": 6, "Unhealthy": 3}
    assert finding.changed_at == datetime(2024, 5, 1, 9, 58, 2, tzinfo=UTC)
    assert finding.summary == "9 warning event(s): BackOff ×6, Unhealthy ×3"


def test_events_of_the_new_api_shape_use_event_time_and_series() -> None:
    payments_event = recording("kubernetes", "events.json")["items"][-1]
    assert kubernetes.event_time(payments_event) == datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)
    [finding] = kubernetes.event_findings([payments_event], {"payments-6b5d4c3f2-h8j2n"}, SINCE, NOW)
    assert finding.evidence["reasons"] == {"FailedScheduling": 9}


def test_owned_names_include_owners() -> None:
    names = kubernetes.owned_names(_items("pods"), _items("replicasets"))
    assert {"checkout", "checkout-7d9f8b6c5", "checkout-7d9f8b6c5-x2k8p"} <= names
    assert "payments-6b5d4c3f2-h8j2n" not in names
