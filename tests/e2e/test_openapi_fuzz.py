"""schemathesis over the gateway's own OpenAPI, against the running stack: for data that
fits the schema and data that does not, no answer is a 5xx and every answer matches
what the schema documents (status code, content type, body, headers).

Bounded: a few examples per operation and mode, so it runs in the suite every time.
The live stream is left out (it never ends by design); `tests/e2e/test_stream_*.py`
covers it.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES_PER_OPERATION = 8
SILENCE_ENDS = "2999-01-01T00:00:00Z"
NO_REAL_ALERT = {"label": "fuzz_only", "op": "=", "value": "no alert carries this"}
LEFT_OUT = {"/v1/stream"}


@pytest.fixture(scope="module")
def gateway_schema(stack):
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json", timeout=30)
    schema.config.update(base_url=stack.base_url)
    # The token is ours, given with each call, so schemathesis also probes every operation
    # without it and with a wrong one, and expects a refusal.
    schema.config.generation.update(with_security_parameters=False)
    return schema


def next_cursor(stack, token: dict[str, str]) -> str:
    """A cursor as the API hands it out (two incidents, a page of one)."""
    with httpx.Client(base_url=stack.base_url, headers=token, timeout=30) as client:
        for n in range(2):
            opened = client.post("/v1/incidents", json={"title": f"cursor {n}", "service": "fuzz", "severity": "low"})
            assert opened.status_code == 201, opened.text
        page = client.get("/v1/incidents", params={"limit": 1})
        assert page.status_code == 200, page.text
        return page.json()["next_cursor"]


def expire_silences(stack, token: dict[str, str]) -> None:
    """End every silence the fuzzing created, so none outlives this test."""
    with httpx.Client(base_url=stack.base_url, headers=token, timeout=30) as client:
        listed = client.get("/v1/silences", params={"limit": 1000})
        assert listed.status_code == 200, listed.text
        for silence in listed.json()["silences"]:
            if silence["kind"] == "silence" and silence["created_by"] == "fuzz":
                assert client.delete(f"/v1/silences/{silence['id']}").status_code == 200


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_as_documented(gateway_schema, stack, mode: GenerationMode) -> None:
    token = stack.auth("admin", sub="fuzz")
    issued_cursor = next_cursor(stack, token)
    failures: list[str] = []
    tried = 0
    for result in gateway_schema.get_all_operations():
        operation = result.ok()
        if operation.path in LEFT_OUT:
            continue
        tried += 1

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_as_documented(case) -> None:
            if mode is GenerationMode.POSITIVE and case.query and "cursor" in case.query:
                # A cursor is an opaque token the API issues: valid ones come from a listing.
                case.query["cursor"] = issued_cursor
            if mode is GenerationMode.POSITIVE and operation.label == "POST /v1/silences" and isinstance(case.body, dict):
                # What a schema cannot say: a silence ends after it starts, and a regex matcher's
                # value compiles (each refusal is a 422, tested in test_silences.py).
                case.body["ends_at"] = SILENCE_ENDS
                case.body.pop("starts_at", None)
                matchers = case.body.get("matchers")
                for matcher in matchers if isinstance(matchers, list) else ():
                    if isinstance(matcher, dict) and matcher.get("op") in ("=~", "!~"):
                        matcher["value"] = "(?s).*"
                if isinstance(matchers, list) and matchers:
                    # A silence swallows the alerts of every later test on this stack unless
                    # one of its matchers holds for no real alert.
                    matchers[-1] = NO_REAL_ALERT
            case.call_and_validate(headers=token, timeout=30)

        try:
            answers_as_documented()
        except Unsatisfiable:
            # Nothing to get wrong: an operation without parameters has no negative data.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
        stack.check_alive()
    expire_silences(stack, token)
    assert tried >= 20, f"only {tried} operations in the schema"
    assert not failures, "\n\n".join(failures)
