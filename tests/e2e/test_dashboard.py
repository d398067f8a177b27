"""The dashboard at `/` in a real browser (Debian's Chromium driven by Playwright).

Incidents and their changes appear without a reload, commands from the page send the
version shown and explain a conflict, and a page left open across a gateway restart
says so, resumes from its last event and misses nothing. Screenshots go to artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from harness.servers import server_unavailable
from harness.waiting import wait_for_async
from harness.evidence import series_evidence
from runs import Found, feed_run, suspect
from sse_client import open_stream
from stack import REPO_ROOT, Stack
from warroom.servers import free_port

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request, Route, async_playwright, expect
except ImportError as missing:  # pragma: no cover - the dev dependencies include it
    async_playwright = None
    PLAYWRIGHT_MISSING = missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "artifacts"
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen
NARROW = {"width": 1280, "height": 900}  # a smaller laptop
LAPTOP = {"width": 1366, "height": 768}  # the commonest laptop screen

LIVE_MS = 2000  # a change shows up on an open page within this
SETTLE_MS = 15_000  # the page's own round trips, where no latency promise is made
RESTART_S = 60
CONSOLE_SLACK_S = 2.0
SOURCE_STATES = {"pending", "running", "succeeded", "failed", "no_data", "unavailable", "timed_out"}

# Test-side instrumentation: every connection state the page shows, in order.
STATES_SCRIPT = """
window.__connectionStates = [];
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("connection");
  new MutationObserver(() => window.__connectionStates.push(el.dataset.state))
    .observe(el, { attributes: true, attributeFilter: ["data-state"] });
});
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        server_unavailable("Playwright", PLAYWRIGHT_MISSING)
    if not CHROMIUM.exists():
        server_unavailable("Chromium", f"{CHROMIUM} not found (apt-get install -y chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Dashboard:
    """One browser tab on the dashboard, with what its console said."""

    page: Page
    base_url: str
    console: list[tuple[float, str]] = field(default_factory=list)

    def record(self, text: str) -> None:
        self.console.append((time.monotonic(), text))

    async def sign_in(self, token: str) -> None:
        await self.page.goto(self.base_url + "/")
        await self.page.get_by_label("Access token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.connection).to_have_attribute("data-state", "live", timeout=SETTLE_MS)

    @property
    def connection(self):
        return self.page.locator("#connection")

    def list_item(self, incident_id: str):
        return self.page.locator(f'#incident-list li[data-incident-id="{incident_id}"]')

    @property
    def incident(self):
        return self.page.locator("#incident")

    def shown_status(self):
        return self.incident.locator(".incident-meta [data-status]")

    def shown_version(self):
        return self.incident.locator(".incident-meta [data-version]")

    async def open(self, incident_id: str, title: str) -> None:
        await self.list_item(incident_id).get_by_role("link").click()
        await expect(self.page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=SETTLE_MS)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def errors(self, allowed=lambda at, text: False) -> list[str]:
        """What the console said at error level, less what `allowed(at, text)` expects."""
        return [text for at, text in self.console if not allowed(at, text)]


@pytest.fixture
async def dashboard(browser: Browser, stack: Stack) -> AsyncIterator[Dashboard]:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    tab = Dashboard(page=page, base_url=stack.base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.record(f"console error: {message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.record(f"uncaught: {error}"))
    try:
        yield tab
    finally:
        await context.close()


async def open_incident(api: httpx.AsyncClient, title: str, service: str, severity: str = "high") -> str:
    response = await api.post("/v1/incidents", json={"title": title, "service": service, "severity": severity})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def shown_at_1280(stack: Stack, dashboard: Dashboard, api: httpx.AsyncClient, title: str, service: str) -> str:
    """Rosa, a responder, on a 1280 px wide page showing a new incident `api` opened; its id."""
    await dashboard.page.set_viewport_size(NARROW)
    await dashboard.sign_in(stack.token("responder", sub="rosa"))
    incident = await open_incident(api, title, service)
    await dashboard.open(incident, title)
    return incident


async def command(api: httpx.AsyncClient, incident: str, what: str, body: dict | None = None) -> dict:
    response = await api.post(f"/v1/incidents/{incident}/{what}", json=body or {})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def test_incidents_and_their_changes_appear_without_reload(stack: Stack, dashboard: Dashboard) -> None:
    service = unique("dash")
    page = dashboard.page
    await dashboard.sign_in(stack.token("responder", sub="dana"))
    # The filter narrows the list, and what arrives live is filtered too.
    await page.get_by_label("Service").fill(service)
    await expect(page.locator("#list-summary")).to_have_text("No incidents match these filters.", timeout=SETTLE_MS)

    async with stack.client("responder", sub="api") as api:
        title = f"Checkout 5xx {service}"
        incident = await open_incident(api, title, service, "critical")
        item = dashboard.list_item(incident)
        await expect(item).to_be_visible(timeout=LIVE_MS)
        await expect(item.locator("[data-severity]")).to_have_text("Critical")
        elsewhere = await open_incident(api, "Somewhere else", unique("other"))

        # Keyboard: the list entry is a link, and opening it moves focus to the incident.
        await item.get_by_role("link").focus()
        await page.keyboard.press("Enter")
        heading = page.get_by_role("heading", name=title, exact=True)
        await expect(heading).to_be_visible(timeout=SETTLE_MS)
        await expect(heading).to_be_focused()
        await expect(page).to_have_url(re.compile(f"#/incidents/{incident}$"))

        moved = await command(api, incident, "status", {"to": "mitigated", "reason": "rolled back"})
        await expect(dashboard.shown_status()).to_have_text("Mitigated", timeout=LIVE_MS)
        await expect(item.locator("[data-status]")).to_have_text("Mitigated", timeout=LIVE_MS)
        await expect(dashboard.shown_version()).to_have_text(f"version {moved['version']}", timeout=LIVE_MS)

        await command(api, incident, "notes", {"text": "Rolled back checkout-api 2.14; error ratio falling."})
        notes = dashboard.incident.locator(".panel-notes")
        await expect(notes.get_by_text("Rolled back checkout-api 2.14; error ratio falling.")).to_be_visible(timeout=LIVE_MS)

        # Correlation progress: the run and each of its sources, as they progress.
        run = (await api.post(f"/v1/incidents/{incident}/correlation")).json()["run_id"]
        shown_run = dashboard.incident.locator(f'[data-run-id="{run}"]')
        await expect(shown_run).to_be_visible(timeout=LIVE_MS)
        for source in stack.settings.correlation.sources:
            await expect(shown_run.locator(f'[data-source-name="{source}"]')).to_be_visible(timeout=LIVE_MS)

        async def completed_run() -> dict | None:
            runs = (await api.get(f"/v1/incidents/{incident}/correlation")).json()
            return next((r for r in runs if r["run_id"] == run and r["state"] == "completed"), None)

        # However far the run got, the page follows; once it is over, the page shows how it
        # ended, each source's outcome and, where a source could not answer, why.
        final = await wait_for_async(completed_run, timeout=RESTART_S, message="the correlation run completes")
        await expect(shown_run).to_have_attribute("data-state", final["outcome"], timeout=LIVE_MS)
        for source in final["sources"]:
            row = shown_run.locator(f'[data-source-name="{source["source"]}"]')
            await expect(row).to_have_attribute("data-state", source["state"], timeout=LIVE_MS)
            if source["error"]:
                await expect(row).to_contain_text(source["error"])
        assert {s["state"] for s in final["sources"]} <= SOURCE_STATES

        # A second incident of the service arrives on top; the other service's never shows.
        second = await open_incident(api, f"Checkout latency {service}", service, "medium")
        await expect(dashboard.list_item(second)).to_be_visible(timeout=LIVE_MS)
        await expect(page.locator("#incident-list li").first).to_have_attribute("data-incident-id", second)
        await expect(dashboard.list_item(elsewhere)).to_have_count(0)

    await expect(dashboard.connection).to_have_attribute("data-state", "live")
    await expect(dashboard.connection).to_have_text("Live")
    assert await unlabelled_controls(page) == []
    print(f"screenshot: {await dashboard.screenshot('dashboard.png')}")
    assert dashboard.errors() == []


async def unlabelled_controls(page: Page) -> list[str]:
    """Form controls and buttons a screen reader could not name."""
    return await page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => el.offsetParent !== null)
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                        && !(el.tagName === "BUTTON" && el.textContent.trim()))
        .map((el) => el.outerHTML.slice(0, 120))""")


async def test_status_change_from_the_page_and_a_conflict(stack: Stack, dashboard: Dashboard) -> None:
    service = unique("dash")
    page = dashboard.page
    await dashboard.sign_in(stack.token("responder", sub="erin"))
    async with stack.client("responder", sub="api") as api:
        title = f"Payments timeouts {service}"
        incident = await open_incident(api, title, service)
        await dashboard.open(incident, title)
        await expect(dashboard.shown_version()).to_have_text("version 1", timeout=LIVE_MS)

        await page.get_by_label("Move to").select_option("investigating")
        await page.get_by_role("button", name="Change status").click()
        await expect(dashboard.shown_status()).to_have_text("Investigating", timeout=LIVE_MS)
        await expect(dashboard.shown_version()).to_have_text("version 2", timeout=LIVE_MS)
        await expect(page.get_by_role("status").filter(has_text="done (version 2)")).to_be_visible()
        timeline = (await api.get(f"/v1/incidents/{incident}/timeline")).json()
        assert timeline[-1]["type"] == "StatusChanged" and timeline[-1]["actor"]["id"] == "erin"

        await page.get_by_role("button", name="Acknowledge").click()
        await expect(page.get_by_role("button", name="Acknowledged")).to_be_disabled(timeout=LIVE_MS)

        # Someone else moves the incident while the page's command is on its way: the
        # page sent the version it showed, so the decider refuses it.
        meanwhile: dict = {}
        moved_meanwhile = asyncio.Event()

        async def someone_else_first(route: Route) -> None:
            meanwhile.update(await command(api, incident, "status", {"to": "mitigated"}))
            moved_meanwhile.set()
            await route.continue_()

        await page.route("**/v1/incidents/*/status", someone_else_first, times=1)
        await page.get_by_label("Move to").select_option("resolved")
        await page.get_by_role("button", name="Change status").click()
        await asyncio.wait_for(moved_meanwhile.wait(), SETTLE_MS / 1000)
        conflict = page.get_by_role("alert").filter(has_text="Someone changed this incident")
        await expect(conflict).to_have_text(
            f"Someone changed this incident (now mitigated, version {meanwhile['version']}). "
            "Reload to see the change.", timeout=SETTLE_MS)
        # ...and the page refreshed to what is now true.
        await expect(dashboard.shown_status()).to_have_text("Mitigated", timeout=LIVE_MS)
        await expect(dashboard.shown_version()).to_have_text(f"version {meanwhile['version']}", timeout=LIVE_MS)
        current = (await api.get(f"/v1/incidents/{incident}")).json()
        assert (current["status"], current["version"]) == ("mitigated", meanwhile["version"])

        # A move that needs a reason asks for one before sending anything.
        await page.get_by_label("Move to").select_option("resolved")
        await page.get_by_role("button", name="Change status").click()
        await expect(dashboard.shown_status()).to_have_text("Resolved", timeout=LIVE_MS)
        await page.get_by_label("Move to").select_option("investigating")
        await page.get_by_role("button", name="Change status").click()
        await expect(page.get_by_role("alert").filter(has_text="needs a reason")).to_be_visible()
        await page.get_by_label("Reason").fill("regressed after the fix")
        await page.get_by_role("button", name="Change status").click()
        await expect(dashboard.shown_status()).to_have_text("Investigating", timeout=LIVE_MS)

        await page.get_by_label("Add a note").fill("Paged the payments on-call.")
        await page.get_by_role("button", name="Add note").click()
        await expect(dashboard.incident.locator(".panel-notes").get_by_text("Paged the payments on-call.")).to_be_visible(
            timeout=LIVE_MS)

    await dashboard.screenshot("dashboard-conflict.png")
    # Chrome logs every answer of 4xx as a failed load, the refused command included.
    refused = re.compile(rf"status of 409 \(Conflict\) \({re.escape(dashboard.base_url)}/v1/incidents/{incident}/status\)")
    assert len([text for _, text in dashboard.console if refused.search(text)]) == 1, dashboard.console
    assert dashboard.errors(lambda at, text: bool(refused.search(text))) == []


async def test_a_responder_confirms_a_hypothesis_with_one_click(stack: Stack, dashboard: Dashboard) -> None:
    """Hypotheses show suspect, signal, confidence and path; one click confirms one; the
    cause shows on the incident and on the scorecard, and changes by others arrive live."""
    service, db, payments, dns = unique("checkout"), unique("payments-db"), unique("payments"), unique("dns")
    page = dashboard.page
    async with stack.client("responder", sub="sam") as sam:
        title = f"Checkout 5xx {service}"
        incident = await shown_at_1280(stack, dashboard, sam, title, service)
        cause = dashboard.incident.locator(".panel-cause [data-root-cause]")
        await expect(cause).to_have_text("Not confirmed yet.")

        run = await feed_run(stack, incident, [
            suspect(1, db, "latency", 0.87, [db, payments, service], "p95 latency 40 ms → 900 ms since 12:03"),
            suspect(2, payments, "errors", 0.55, [payments, service], "5xx ratio 0.1% → 6%"),
            suspect(3, service, "traffic", 0.3, [service], "requests down 40%")])
        shown_run = dashboard.incident.locator(f'[data-run-id="{run}"]')
        await expect(shown_run).to_have_attribute("data-state", "succeeded", timeout=LIVE_MS)
        first = shown_run.locator(".hypothesis").first
        await expect(shown_run.locator(".hypothesis")).to_have_count(3)
        await expect(first.locator(".suspect")).to_have_text(db)
        await expect(first.locator("[data-signal]")).to_have_text("Latency")
        await expect(first.locator(".confidence")).to_have_text("87%")
        await expect(first.locator(".path")).to_have_text(f"{db} → {payments} → {service}")

        # The small form, for a service no hypothesis names.
        await page.get_by_label("Service at fault").fill(dns)
        await page.locator("#cause-note").fill("resolver timeouts")
        await page.get_by_role("button", name="Confirm cause").click()
        await expect(cause).to_have_attribute("data-root-cause", dns, timeout=LIVE_MS)
        await expect(cause).to_contain_text("resolver timeouts")
        await expect(page.get_by_label("Service at fault")).to_have_value("")

        # Someone else corrects it: the page follows the stream.
        await command(sam, incident, "root-cause", {"service": payments, "signal": "errors"})
        await expect(cause).to_have_attribute("data-root-cause", payments, timeout=LIVE_MS)
        await expect(shown_run.locator('.hypothesis[data-confirmed="true"]')).to_have_attribute("data-service", payments)

        # One click on the top hypothesis.
        await page.get_by_role("button", name=f"Confirm {db} (latency) as the root cause").click()
        await expect(cause).to_have_attribute("data-root-cause", db, timeout=LIVE_MS)
        await expect(first).to_have_attribute("data-confirmed", "true")
        await expect(first.locator(".badge.cause")).to_have_text("Confirmed cause")
        await expect(first.get_by_role("button")).to_have_count(0)  # confirming it again would change nothing
        await expect(dashboard.incident.locator(f'.incident-meta [data-cause="{db}"]')).to_have_text(f"Root cause: {db}")
        confirmations = dashboard.incident.locator('.timeline li[data-type="RootCauseConfirmed"]')
        await expect(confirmations).to_have_count(3)
        await expect(confirmations.first).to_contain_text(f"Root cause confirmed by rosa: {db} (latency), replacing {payments}")
        shown = (await sam.get(f"/v1/incidents/{incident}")).json()["root_cause"]
        assert (shown["service"], shown["signal"], shown["confirmed_by"]) == (db, "latency", "rosa")
        assert await unlabelled_controls(page) == []
        print(f"screenshot: {await dashboard.screenshot('root-cause.png')}")

        # The scorecard, from the header; it follows new confirmations as they happen.
        await page.get_by_role("link", name="Scorecard").click()
        await expect(page).to_have_url(re.compile("#/scorecard$"))
        row = page.locator(f'#scorecard tr[data-incident-id="{incident}"]')
        await expect(row).to_be_visible(timeout=SETTLE_MS)
        await expect(row.locator("[data-rank]")).to_have_text("1")
        await expect(row.locator("td").nth(3)).to_have_text("yes")
        await expect(row).to_contain_text(db)
        card = (await sam.get("/v1/scorecard", params={"limit": 1})).json()
        await expect(page.locator('[data-figure="n"] .figure-value')).to_have_text(str(card["n"]))
        later = await open_incident(sam, f"Search slow {service}", service, "medium")
        await command(sam, later, "root-cause", {"service": "search-index"})
        late_row = page.locator(f'#scorecard tr[data-incident-id="{later}"]')
        await expect(late_row.locator("[data-rank]")).to_have_text("no run", timeout=LIVE_MS)
        await expect(page.locator("#scorecard tbody tr").first).to_have_attribute("data-incident-id", later)
        print(f"screenshot: {await dashboard.screenshot('scorecard.png')}")
        await row.get_by_role("link").click()
        await expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=SETTLE_MS)

    # A viewer sees hypotheses and the cause, and has nothing to confirm with.
    await page.get_by_role("button", name="Sign out").click()
    await dashboard.sign_in(stack.token("viewer", sub="vic"))
    await page.goto(f"{dashboard.base_url}/#/incidents/{incident}")
    await expect(cause).to_have_attribute("data-root-cause", db, timeout=SETTLE_MS)
    await expect(shown_run.locator(".hypothesis")).to_have_count(3)
    await expect(dashboard.incident.get_by_role("button", name=re.compile("Confirm"))).to_have_count(0)
    await expect(page.get_by_text("Responders confirm the root cause here.")).to_be_visible()
    assert dashboard.errors() == []


async def test_evidence_is_drawn_and_the_timeline_folds_each_run(stack: Stack, dashboard: Dashboard) -> None:
    """Each finding that kept its series has a chart (its path, the shaded baseline, the
    window, the anchor, the change, the typical value, a restart of the same service);
    an older finding shows none and breaks nothing; the run's suspects are drawn in the
    service graph, ranked, and the confirmed cause is marked there; the timeline folds
    the run's progress under its start while people's actions stand out."""
    service, db, payments = unique("checkout"), unique("payments-db"), unique("payments")
    page = dashboard.page
    async with stack.client("responder", sub="sam") as sam:
        title = f"Checkout slow {service}"
        incident = await shown_at_1280(stack, dashboard, sam, title, service)
        await command(sam, incident, "acknowledge")
        anchor = datetime.now(UTC)
        latency = series_evidence(db, "latency", anchor=anchor, typical=0.04, bad=0.9)
        changed = datetime.fromisoformat(latency["anomaly"]["started_at"])
        found = [
            Found(db, "latency", f"{db}: latency up to 0.9 (0.04 usually)", 0.95, latency, changed),
            Found(payments, "errors", f"{payments}: errors up to 30%", 0.8,
                  series_evidence(payments, "errors", anchor=anchor, typical=0.002, bad=0.3), changed),
            Found(db, "restarts", f"{db} restarted", 0.6, {"count": 1}, changed - timedelta(seconds=50)),
            Found(service, "errors", "error rate 12% above 5% over 5m", 0.5,  # evidence as older findings kept it
                  {"query": "rate(x[5m])", "window": "5m", "value": 0.12, "threshold": 0.05}, kind="error_rate"),
        ]
        run = await feed_run(stack, incident, [
            suspect(1, db, "latency", 0.87, [db, payments, service]),
            suspect(2, payments, "errors", 0.55, [payments, service]),
            suspect(3, service, "latency", 0.3, [service])], found)
        shown_run = dashboard.incident.locator(f'article.run[data-run-id="{run}"]')
        await expect(shown_run).to_have_attribute("data-state", "succeeded", timeout=LIVE_MS)
        findings = (await sam.get(f"/v1/incidents/{incident}/findings")).json()
        by_kind = {f["kind"]: f for f in findings}
        assert by_kind["latency"]["chart"] and by_kind["errors"]["chart"]
        assert by_kind["restarts"]["chart"] is None and by_kind["error_rate"]["chart"] is None

        # A chart per finding that kept its series, with every part drawn.
        charts = dashboard.incident.locator(".panel-findings .picture-chart svg")
        await expect(charts).to_have_count(2, timeout=SETTLE_MS)
        chart = dashboard.incident.locator(f'.finding[data-finding-id="{by_kind["latency"]["finding_id"]}"] svg')
        for part in ("path.series", "rect.baseline", "rect.window", "g.anchor line", "g.change line",
                     "g.typical line", "circle.peak", "g.mark.restart line"):
            await expect(chart.locator(part)).to_have_count(1)
        d = await chart.locator("path.series").get_attribute("d")
        assert d.count("L") + d.count("M") == len(latency["values"])
        baseline, window = await chart.locator("rect.baseline").bounding_box(), await chart.locator("rect.window").bounding_box()
        assert baseline["width"] > 20 and window["width"] > baseline["width"]  # the window keeps most of the width
        change = await chart.locator("g.change line").bounding_box()
        assert window["x"] < change["x"] < window["x"] + window["width"]
        await expect(chart.locator("text").filter(has_text=f"change {changed:%H:%M:%S}")).to_have_count(1)
        errors = dashboard.incident.locator(f'.finding[data-finding-id="{by_kind["errors"]["finding_id"]}"] svg')
        await expect(errors.locator("g.mark")).to_have_count(0)  # the restart was another service's
        await expect(errors.locator("text").filter(has_text="30%")).to_have_count(1)
        older = dashboard.incident.locator(f'.finding[data-finding-id="{by_kind["error_rate"]["finding_id"]}"]')
        await expect(older).to_contain_text("error rate 12% above 5% over 5m")
        await expect(older.locator(".picture")).to_have_count(0)

        # The run's part of the service graph: callers above callees, suspects ranked.
        graph = shown_run.locator(".picture-graph svg")
        await expect(graph.locator("g.node")).to_have_count(3, timeout=SETTLE_MS)
        await expect(graph.locator("g.edge")).to_have_count(2)
        await expect(graph.locator("g.edge.on-path")).to_have_count(2)
        top = graph.locator(f'g.node.rank-1[data-service="{db}"]')
        await expect(top.locator("g.rank text")).to_have_text("1")
        await expect(graph.locator(f'g.node.rank-2[data-service="{payments}"]')).to_have_count(1)
        await expect(graph.locator(f'g.node.symptom.rank-3[data-service="{service}"]')).to_have_count(1)
        heights = [(await graph.locator(f'g.node[data-service="{name}"] rect').bounding_box())["y"]
                   for name in (service, payments, db)]
        assert heights == sorted(heights) and len(set(heights)) == 3
        print(f"screenshot: {await dashboard.screenshot('evidence.png')}")
        ARTIFACTS.mkdir(exist_ok=True)
        await dashboard.incident.locator(".panel-findings").screenshot(path=str(ARTIFACTS / "evidence-findings.png"))
        await shown_run.screenshot(path=str(ARTIFACTS / "evidence-run.png"))

        # Confirming the top suspect marks it in the graph.
        await page.get_by_role("button", name=f"Confirm {db} (latency) as the root cause").click()
        await expect(graph.locator(f'g.node.confirmed[data-service="{db}"]')).to_have_count(1, timeout=LIVE_MS)

        # The timeline: the run's progress folded under its start, people's actions standing out.
        timeline = dashboard.incident.locator(".timeline")
        folded = timeline.locator(f'li.tl-run[data-folded-run="{run}"]')
        sources = len(stack.settings.correlation.sources)
        await expect(folded.locator("summary")).to_have_text(
            re.compile(rf"^{sources} sources?, 4 findings, \d+ (ms|s)$"), timeout=LIVE_MS)
        progress = folded.locator(".tl-progress li")
        await expect(progress).to_have_count(2 * sources + 4)
        await expect(progress.first).to_be_hidden()  # folded until opened
        await folded.locator("summary").click()
        await expect(progress.filter(has_text=f"{db} restarted")).to_be_visible()
        await expect(timeline.locator('li.tl-person[data-type="IncidentAcknowledged"]')).to_contain_text("sam")
        await expect(timeline.locator('li.tl-person[data-type="RootCauseConfirmed"]')).to_contain_text("rosa")
        await expect(timeline.locator('li.tl-hypotheses[data-type="CorrelationCompleted"]')).to_contain_text(db)
        timeline_rows = (await sam.get(f"/v1/incidents/{incident}/timeline")).json()
        await expect(timeline.locator("li[data-version]")).to_have_count(len(timeline_rows))
        assert await unlabelled_controls(page) == []
        await folded.scroll_into_view_if_needed()
        print(f"screenshot: {await dashboard.screenshot('evidence-confirmed.png')}")

        # The pictures are the gateway's: SVG documents that run nothing; no series, no chart.
        drawn = await sam.get(by_kind["latency"]["chart"])
        assert drawn.status_code == 200 and drawn.headers["content-type"].startswith("image/svg+xml")
        assert drawn.headers["content-security-policy"] == "default-src 'none'"
        refused = await sam.get(f"/v1/incidents/{incident}/findings/{by_kind['error_rate']['finding_id']}/chart")
        assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
        graph_doc = await sam.get(f"/v1/incidents/{incident}/graph")
        assert graph_doc.status_code == 200 and f'data-service="{db}"' in graph_doc.text
        nothing = await open_incident(sam, f"Nothing correlated {service}", unique("quiet"))
        assert (await sam.get(f"/v1/incidents/{nothing}/graph", params={"run_id": str(run)})).status_code == 404
    assert dashboard.errors() == []


async def test_pages_load_more_by_cursor(stack: Stack, dashboard: Dashboard) -> None:
    service = unique("many")
    async with stack.client("responder", sub="api") as api:
        # One more page than the dashboard's 50, opened a few at a time.
        gate = asyncio.Semaphore(8)

        async def one(n: int) -> str:
            async with gate:
                return await open_incident(api, f"Noisy {n:02d} {service}", service, "low")

        await asyncio.gather(*(one(n) for n in range(53)))

        async def all_projected() -> list[dict]:
            items = (await api.get("/v1/incidents", params={"service": service, "limit": 100})).json()["items"]
            return items if len(items) == 53 else []

        listed = await wait_for_async(all_projected, timeout=SETTLE_MS / 1000, message="53 incidents listed")
    page = dashboard.page
    await dashboard.sign_in(stack.token("viewer", sub="vic"))
    async with page.expect_response(lambda response: f"service={service}" in response.url):
        await page.get_by_label("Service").fill(service)
    rows = page.locator("#incident-list li")
    await expect(rows).to_have_count(50, timeout=SETTLE_MS)
    await expect(rows.first).to_have_attribute("data-incident-id", listed[0]["id"])
    await page.get_by_role("button", name="Load more").click()
    await expect(rows).to_have_count(53, timeout=SETTLE_MS)
    shown = await rows.evaluate_all("items => items.map(item => item.dataset.incidentId)")
    assert shown == [incident["id"] for incident in listed]  # newest first, as the API pages them
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # A viewer sees everything and may do nothing.
    await rows.first.get_by_role("link").click()
    await expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled(timeout=SETTLE_MS)
    await expect(page.get_by_text("Your token is read-only")).to_be_visible()
    assert dashboard.errors() == []


async def test_sign_in_keeps_the_token_until_sign_out(stack: Stack, dashboard: Dashboard) -> None:
    page = dashboard.page
    await page.goto(dashboard.base_url + "/")
    token_field = page.get_by_label("Access token")
    await expect(token_field).to_be_focused()
    await token_field.fill("not a token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-message")).to_have_text(re.compile("not an access token"))
    forged = jwt.encode({"sub": "mallory", "roles": ["admin"], "iss": "warroom", "exp": 2**31},
                        "not-the-secret-" + "y" * 32, algorithm="HS256")
    await token_field.fill(forged)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-message")).to_have_text(re.compile("The gateway refused the token"))

    await dashboard.sign_in(stack.token("viewer", sub="vera"))
    await expect(page.locator("#who")).to_contain_text("vera (viewer)")
    await page.reload()  # the token is kept in the browser
    await expect(dashboard.connection).to_have_attribute("data-state", "live", timeout=SETTLE_MS)
    await page.get_by_role("button", name="Sign out").click()
    await expect(token_field).to_be_visible()
    await expect(dashboard.connection).to_have_text("Not connected")
    await page.reload()
    await expect(token_field).to_be_visible()
    assert await page.evaluate("localStorage.length") == 0

    # The forged token's refusal is logged by the browser as a failed load; nothing else is.
    refused = re.compile(r"status of 401 \(Unauthorized\) \(.*/v1/incidents\?limit=1\)")
    assert dashboard.errors(lambda at, text: bool(refused.search(text))) == []


async def test_a_reset_refetches_and_follows_from_the_newest_position(stack: Stack, dashboard: Dashboard) -> None:
    """A position the gateway no longer keeps gets `event: reset`: the page refetches what
    it shows and follows the stream from the newest position the gateway named."""
    page = dashboard.page
    await page.add_init_script(STATES_SCRIPT)
    service = unique("reset")
    async with stack.client("responder", sub="api") as api:
        before = await open_incident(api, f"Before the reset {service}", service)
        async with open_stream(api, resume_after=10**15) as probe:
            newest = (await probe.next()).json["newest_change_id"]
        streams: list[Request] = []
        page.on("request", lambda request: streams.append(request) if "/v1/stream" in request.url else None)

        async def from_a_forgotten_position(route: Route) -> None:
            await route.continue_(url=route.request.url + f"&last_event_id={10**15}")

        # The first stream the page opens asks for a position the gateway never had.
        await page.route("**/v1/stream*", from_a_forgotten_position, times=1)
        await dashboard.sign_in(stack.token("viewer", sub="rex"))
        await expect(dashboard.list_item(before)).to_be_visible(timeout=SETTLE_MS)
        # The list can be refetched a moment before the stream reports live again.
        async def resynced_then_live() -> list[str] | None:
            states = await page.evaluate("window.__connectionStates")
            return states if "resyncing" in states and states[-1] == "live" else None

        await wait_for_async(resynced_then_live, timeout=SETTLE_MS / 1000,
                             message="the page resyncing, then live")
        followed = re.search(r"[?&]last_event_id=(\d+)", streams[-1].url)
        assert followed and int(followed.group(1)) >= newest, streams[-1].url

        after = await open_incident(api, f"After the reset {service}", service)
        await expect(dashboard.list_item(after)).to_be_visible(timeout=LIVE_MS)
    assert dashboard.errors() == []


# -- a gateway restart under an open page ----------------------------------------------------


async def start_gateway(stack: Stack, name: str, port: int, env: dict[str, str] | None = None) -> None:
    server = stack.start(name, "gateway", env={"WARROOM_GATEWAY__PORT": str(port), **(env or {})})

    async def ready() -> bool:
        assert server.alive(), server.log_tail()
        async with httpx.AsyncClient(timeout=3) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200

    await wait_for_async(ready, timeout=RESTART_S, interval=0.2, message=f"{name} /readyz")



async def test_a_gateway_restart_under_an_open_page_misses_nothing(stack: Stack, dashboard: Dashboard) -> None:
    """The page's gateway is killed twice. The first time the browser's EventSource
    reconnects by itself with Last-Event-ID; the second time the restarting gateway
    first refuses the stream (503, as one does before its change feed is connected),
    which closes the EventSource, and the page reopens it with `last_event_id=`."""
    name, port = "gateway-dashboard", free_port()
    await start_gateway(stack, name, port)
    dashboard.base_url = f"http://127.0.0.1:{port}"
    page = dashboard.page
    await page.add_init_script(STATES_SCRIPT)
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/v1/stream" in request.url else None)
    outages: list[tuple[float, float]] = []
    service = unique("restart")
    try:
        await dashboard.sign_in(stack.token("responder", sub="rita"))
        await page.get_by_label("Service").fill(service)
        async with stack.client("responder", sub="elsewhere") as other:  # the stack's own gateway
            title = f"Search down {service}"
            incident = await open_incident(other, title, service)
            await expect(dashboard.list_item(incident)).to_be_visible(timeout=LIVE_MS)
            await dashboard.open(incident, title)

            # 1. Killed; the browser reconnects by itself and sends Last-Event-ID.
            started = time.monotonic()
            stack.processes[name].kill()
            await expect(dashboard.connection).to_have_attribute("data-state", "reconnecting", timeout=SETTLE_MS)
            await expect(dashboard.connection).to_have_text("Reconnecting…")
            for n in range(3):
                await command(other, incident, "notes", {"text": f"while the gateway was away {n}"})
            moved = await command(other, incident, "status", {"to": "investigating"})
            opened_meanwhile = await open_incident(other, f"Search slow {service}", service, "medium")
            await start_gateway(stack, name, port)
            await expect(dashboard.connection).to_have_attribute("data-state", "live", timeout=RESTART_S * 1000)
            outages.append((started, time.monotonic()))
            resumed = streams[-1]
            assert "last_event_id" not in resumed.url
            assert int((await resumed.all_headers())["last-event-id"]) > 0
            await expect_everything_shown(dashboard, other, incident, moved["version"], opened_meanwhile,
                                          [f"while the gateway was away {n}" for n in range(3)])

            # 2. Killed again; this time the stream is refused once, closing the EventSource.
            last_seen = int((await resumed.all_headers())["last-event-id"])
            started = time.monotonic()
            await page.route("**/v1/stream*", refuse_with_503, times=1)
            stack.processes[name].kill()
            await expect(dashboard.connection).to_have_attribute("data-state", "reconnecting", timeout=SETTLE_MS)
            for n in range(2):
                await command(other, incident, "notes", {"text": f"during the second outage {n}"})
            moved = await command(other, incident, "status", {"to": "mitigated"})
            second_meanwhile = await open_incident(other, f"Search errors {service}", service, "low")
            await start_gateway(stack, name, port)
            await expect(dashboard.connection).to_have_attribute("data-state", "live", timeout=RESTART_S * 1000)
            outages.append((started, time.monotonic()))
            reopened = streams[-1]
            match = re.search(r"[?&]last_event_id=(\d+)", reopened.url)
            assert match, f"the page reopened the stream without last_event_id: {reopened.url}"
            assert int(match.group(1)) > last_seen
            await expect_everything_shown(dashboard, other, incident, moved["version"], second_meanwhile,
                                          [f"during the second outage {n}" for n in range(2)])
            await expect(dashboard.list_item(opened_meanwhile)).to_be_visible()

        states = await page.evaluate("window.__connectionStates")
        assert "resyncing" not in states, f"the page refetched instead of resuming: {states}"
        assert states.count("reconnecting") >= 2 and states[-1] == "live", states
        await dashboard.screenshot("dashboard-after-restart.png")
    finally:
        server = stack.processes.pop(name, None)
        if server is not None:
            server.stop()

    # While its gateway was gone the browser itself logs each failed connection attempt;
    # those (and only those) are expected. Console messages reach the test a moment after
    # they happen, hence the slack after each outage.
    def during_an_outage(at: float, text: str) -> bool:
        network = re.search(r"Failed to load resource: (net::ERR_\w+|the server responded with a status of 503)", text)
        return bool(network) and any(start <= at <= end + CONSOLE_SLACK_S for start, end in outages)

    assert dashboard.errors(during_an_outage) == []


async def refuse_with_503(route: Route) -> None:
    await route.fulfill(status=503, content_type="application/problem+json",
                        body='{"code": "unavailable", "status": 503, "title": "Service unavailable", '
                             '"detail": "the change feed is not connected to PostgreSQL"}')


async def expect_everything_shown(dashboard: Dashboard, api: httpx.AsyncClient, incident: str, version: int,
                                  opened_meanwhile: str, notes: list[str]) -> None:
    """What happened while the page was away is on it, each event once."""
    await expect(dashboard.list_item(opened_meanwhile)).to_be_visible(timeout=LIVE_MS)
    await expect(dashboard.shown_version()).to_have_text(f"version {version}", timeout=LIVE_MS)
    for text in notes:
        await expect(dashboard.incident.locator(".panel-notes").get_by_text(text, exact=True)).to_have_count(1)
    timeline = (await api.get(f"/v1/incidents/{incident}/timeline")).json()
    shown = dashboard.incident.locator(".timeline li[data-version]")  # a run's progress is folded under its start
    await expect(shown).to_have_count(len(timeline))
    assert sorted(int(v) for v in await shown.evaluate_all("els => els.map(e => e.dataset.version)")) == \
        [entry["version"] for entry in timeline]


# -- silences ------------------------------------------------------------------------------------


async def test_a_responder_silences_alerts_from_the_page(stack: Stack, dashboard: Dashboard) -> None:
    """#/silences lists silences and maintenance windows; a responder creates a silence with
    the form (a refusal names the field), sees what it swallows arrive live, and expires it.
    The page's gateway has a maintenance window in its settings, listed and not expirable."""
    service = unique("quiet")
    window = {"name": f"nightly-{service}", "matchers": [{"label": "service", "op": "=", "value": f"{service}-db"}],
              "start": "02:00", "duration_m": 60, "comment": "backups of the primary"}
    name, port = "gateway-silences", free_port()
    await start_gateway(stack, name, port, {"WARROOM_SILENCES__MAINTENANCE": json.dumps([window])})
    dashboard.base_url = f"http://127.0.0.1:{port}"
    page = dashboard.page
    await page.set_viewport_size(LAPTOP)
    try:
        await dashboard.sign_in(stack.token("responder", sub="sol"))
        await page.get_by_role("link", name="Silences").click()
        await expect(page).to_have_url(re.compile("#/silences$"))
        silences = page.locator("#silences")
        await expect(silences.get_by_role("heading", name="Silences", exact=True)).to_be_focused()
        await expect(page.locator("#view-silences")).to_have_attribute("aria-current", "page")
        await expect(dashboard.incident).to_be_hidden()
        shown_window = silences.locator('li[data-kind="maintenance"]').filter(has_text=window["name"])
        await expect(shown_window).to_be_visible(timeout=SETTLE_MS)
        await expect(shown_window.locator(".matchers code")).to_have_text(f'service = "{service}-db"')
        await expect(shown_window).to_contain_text("backups of the primary")
        await expect(shown_window.get_by_role("button")).to_have_count(0)  # changed in settings, not here
        await page.evaluate("window.__notReloaded = true")

        # A regular expression the gateway cannot compile: refused, naming the matcher.
        await page.get_by_label("Matcher 1 Label").fill("service")
        await page.get_by_label("Matcher 1 Op").select_option("=~")
        await page.get_by_label("Matcher 1 Value").fill("db(")
        await page.get_by_label("Comment").fill("disk migration on db-3")
        await page.get_by_role("button", name="Create silence").click()
        refused = silences.get_by_role("alert").filter(has_text="The silence was not created")
        await expect(refused).to_contain_text("matchers.0", timeout=SETTLE_MS)
        await expect(page.get_by_label("Matcher 1 Value")).to_have_attribute("aria-invalid", "true")

        # Corrected, with a second matcher and an explicit end (the form offers four hours from now).
        await page.get_by_label("Matcher 1 Op").select_option("=")
        await page.get_by_label("Matcher 1 Value").fill(service)
        await page.get_by_role("button", name="Add matcher").click()
        await expect(page.get_by_label("Matcher 2 Label")).to_be_focused()
        await page.get_by_label("Matcher 2 Label").fill("alertname")
        await page.get_by_label("Matcher 2 Op").select_option("=~")
        await page.get_by_label("Matcher 2 Value").fill("Disk.*")
        await page.get_by_label("Lasts").select_option("at")
        await expect(page.get_by_label("Ends at")).not_to_have_value("")
        asked_at = datetime.now(UTC)
        await page.get_by_role("button", name="Create silence").click()
        mine = silences.locator('li[data-kind="silence"]').filter(has_text=f'service = "{service}"')
        await expect(mine).to_have_attribute("data-state", "active", timeout=SETTLE_MS)
        await expect(silences.get_by_role("status").filter(has_text="created")).to_be_visible()
        await expect(page.get_by_label("Matcher 1 Label")).to_have_value("")  # ready for the next one
        await expect(page.get_by_label("Matcher 2 Label")).to_have_count(0)
        await expect(mine.locator(".matchers code")).to_have_text([f'service = "{service}"', 'alertname =~ "Disk.*"'])
        await expect(mine.locator("[data-swallowed]")).to_have_text("0 alerts swallowed")
        silence = await mine.get_attribute("data-silence-id")

        async with stack.client("responder", sub="api") as api, stack.client("ingest", sub="pager") as ingest:
            stored = (await api.get(f"/v1/silences/{silence}")).json()
            assert (stored["created_by"], stored["comment"]) == ("sol", "disk migration on db-3")
            assert stored["matchers"] == [{"label": "service", "op": "=", "value": service},
                                          {"label": "alertname", "op": "=~", "value": "Disk.*"}]
            # The end chosen in the browser's own time is the instant the gateway stores.
            ends = datetime.fromisoformat(stored["ends_at"])
            assert abs(ends - (asked_at + timedelta(hours=4))) < timedelta(minutes=2), (ends, asked_at)

            # An alert it matches is swallowed; the count and the alert arrive by the stream.
            disk = {"status": "firing", "labels": {"alertname": "DiskFull", "service": service, "severity": "critical"},
                    "starts_at": datetime.now(UTC).isoformat()}
            assert (await ingest.post("/v1/alerts", json=disk)).status_code == 202
            await expect(mine.locator("[data-swallowed]")).to_have_text("1 alert swallowed", timeout=RESTART_S * 1000)
            await expect(mine.locator(".swallowed-list li")).to_have_count(1)
            await expect(mine.locator(".swallowed-list li")).to_contain_text("DiskFull")
            assert await page.evaluate("window.__notReloaded === true")
            assert await unlabelled_controls(page) == []
            print(f"screenshot: {await dashboard.screenshot('silences.png')}")

            # Expired from the page: it leaves the list, and shows again among the expired ones.
            await mine.get_by_role("button", name=re.compile(r"^Expire silence service = ")).click()
            await expect(mine).to_have_count(0, timeout=SETTLE_MS)
            await expect(silences.locator("#silences-api-title")).to_be_focused()  # not lost with the button
            await expect(silences.get_by_role("status").filter(has_text="expired")).to_be_visible()
            stored = (await api.get(f"/v1/silences/{silence}")).json()
            assert (stored["state"], stored["expired_by"]) == ("expired", "sol")
            await page.get_by_label("Show expired silences too").check()
            await expect(mine).to_have_attribute("data-state", "expired", timeout=SETTLE_MS)
            await expect(mine.get_by_role("button")).to_have_count(0)
            await expect(mine).to_contain_text("by sol")
            await dashboard.screenshot("silences-expired.png")

        # A viewer sees the same list and has nothing to create or expire with.
        await page.get_by_role("button", name="Sign out").click()
        await dashboard.sign_in(stack.token("viewer", sub="vic"))
        await page.get_by_role("link", name="Silences").click()
        await expect(shown_window).to_be_visible(timeout=SETTLE_MS)
        await expect(page.get_by_text("Responders create and expire silences here.")).to_be_visible()
        await expect(silences.get_by_role("button")).to_have_count(0)
        await expect(silences.locator("form")).to_have_count(0)
    finally:
        server = stack.processes.pop(name, None)
        if server is not None:
            server.stop()

    # Chrome logs the refused create (422) as a failed load; nothing else is expected.
    refused_load = re.compile(rf"status of 422 \(Unprocessable (Entity|Content)\) \({re.escape(dashboard.base_url)}/v1/silences\)")
    assert dashboard.errors(lambda at, text: bool(refused_load.search(text))) == []
