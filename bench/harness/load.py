"""Open-loop command load over HTTP: command i is sent at t0 + i/rate whether or not
earlier ones were answered, so a slow system shows up as latency, not as a lower rate."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import aiohttp

FAILED = 599  # the status recorded for a request that got no HTTP answer


@dataclass
class Sent:
    """What became of each command: when it was sent, when and how it was answered, and
    (for a 201) the incident version it made."""

    sent: dict[int, float] = field(default_factory=dict)
    answered: dict[int, tuple[float, int, tuple[str, int] | None]] = field(default_factory=dict)
    elapsed: float = 0.0
    behind_s_max: float = 0.0

    def answer_latencies(self, ok: range = range(200, 300)) -> list[float]:
        return [at - self.sent[i] for i, (at, status, _) in self.answered.items() if status in ok]

    @property
    def versions(self) -> dict[int, tuple[str, int]]:
        return {i: key for i, (_, _, key) in self.answered.items() if key is not None}

    def achieved_rate(self, rate: float) -> float:
        """Commands actually issued per second (what the load client kept up)."""
        if not self.sent:
            return 0.0
        return round(len(self.sent) / (max(self.sent.values()) - min(self.sent.values()) + 1 / rate), 1)


async def add_notes(session: aiohttp.ClientSession, base_url: str, incidents: list[str], rate: float,
                    seconds: float) -> Sent:
    """POST a note at `rate` per second for `seconds`, round-robin over `incidents`."""
    total = int(rate * seconds)
    result = Sent()

    async def one(i: int) -> None:
        incident = incidents[i % len(incidents)]
        result.sent[i] = time.perf_counter()
        try:
            async with session.post(f"{base_url}/v1/incidents/{incident}/notes",
                                    json={"text": f"bench note {i}"}) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            result.answered[i] = (time.perf_counter(), FAILED, None)
            print(f"request {i}: {err!r}", file=sys.stderr)
            return
        result.answered[i] = (time.perf_counter(), status, (incident, body["version"]) if status == 201 else None)

    tasks = []
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.behind_s_max = max(result.behind_s_max, -delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - t0
    return result
