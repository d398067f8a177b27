"""A postmortem as a Markdown document people finish and share.

Pure rendering of `projections.history.postmortem.Postmortem`: what the log knows is written
out (facts, timeline, durations, evidence queries); what only people know
(contributing factors, action items, lessons) is left as headed, empty sections.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from projections.history.evidence_chart import FindingFacts, has_chart
from projections.history.incident_graph import suspects_of
from projections.history.postmortem import DURATIONS, Finding, Postmortem, Run
from projections.scorecard import TOP, field_of
from projections.timeline import PROGRESS

if TYPE_CHECKING:
    from projections.history.postmortem_figures import Figures

TO_WRITE = "_To be written by the responders._"
EVIDENCE_SHOWN = ("query", "baseline_query", "window", "value", "threshold", "link", "links")


def duration(seconds: float | None) -> str:
    """`1h 02m 03s`, `4m 05s`, `12s`, `0.4s`; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 9.95 and round(seconds, 1) != round(seconds):
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def when(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: Any) -> str:
    return str(text if text is not None else "—").replace("|", "\\|").replace("\n", " ")


def render(pm: Postmortem, figures: Figures | None = None) -> str:
    """The whole document. With `figures` (`postmortem_figures`), the charts and the
    service graph are images of those files; without, text that names the gateway paths
    drawing them, so the document stays self-contained."""
    parts = [_header(pm), _summary(pm), _root_cause(pm), _impact(pm), _durations(pm), _timeline(pm),
             _responders(pm), _alerts(pm), _paging(pm), _correlation(pm, figures), _hypotheses(pm, figures), _notes(pm),
             _to_write()]
    return "\n\n".join(part.rstrip() for part in parts) + "\n"


def _header(pm: Postmortem) -> str:
    i = pm.incident
    severity = i["severity"]
    if pm.opened_severity != severity:
        severity = f"{severity} (opened as {pm.opened_severity})"
    opened_by = i.get("opened_by") or {}
    log = pm.log
    chain = (f"{log.events} events, hash chain intact (last hash `{log.last_hash[:16]}…`)" if log.valid
             else f"{log.events} events verified; **the hash chain breaks at version {log.first_bad_version}**")
    rows = [
        ("Incident", f"`{i['id']}`"), ("Service", i["service"]), ("Severity", severity),
        ("Status", i["status"]),
        ("Opened", f"{when(i['opened_at'])} by {opened_by.get('id', '—')}"),
        ("Acknowledged", _at_after(i["acknowledged_at"], i["time_to_acknowledge_s"], i["acknowledged_by"])),
        ("Mitigated", _at_after(i["mitigated_at"], i["time_to_mitigate_s"])),
        ("Resolved", _at_after(i["resolved_at"], i["time_to_resolve_s"])),
        ("Log", chain),
    ]
    table = "\n".join(f"| {name} | {_cell(value)} |" for name, value in rows)
    return f"# Postmortem: {i['title']}\n\n| | |\n|---|---|\n{table}"


def _at_after(at: datetime | None, seconds: float | None, by: str | None = None) -> str:
    if at is None:
        return "—"
    who = f" by {by}" if by else ""
    return f"{when(at)}{who}, {duration(seconds)} after opening"


def _summary(pm: Postmortem) -> str:
    i = pm.incident
    sentences = [f"“{i['title']}” (service **{i['service']}**) was opened at {when(i['opened_at'])}."]
    facts = [f"{verb} after {duration(i[key])}" for key, verb in
             (("time_to_acknowledge_s", "acknowledged"), ("time_to_mitigate_s", "mitigated"),
              ("time_to_resolve_s", "resolved")) if i[key] is not None]
    if facts:
        sentences.append("It was " + ", ".join(facts) + ".")
    if i["status"] != "resolved":
        sentences.append(f"It is still **{i['status']}**.")
    top = f"; the top hypothesis is: {_hypothesis_text(pm.hypotheses[0])}" if pm.hypotheses else ""
    sentences.append(f"{len(pm.alerts)} alert(s) fired; correlation ran {len(pm.runs)} time(s){top}.")
    cause = pm.root_cause
    if cause is not None:
        sentences.append(f"The root cause was confirmed as **{_cause(cause)}** by {cause['confirmed_by']}; "
                         f"{_verdict(cause)}.")
    quoted = f"\n\n> {i['description']}" if i.get("description") else ""
    return (f"## Summary\n\n{' '.join(sentences)}{quoted}\n\n"
            f"{TO_WRITE} (what happened, who was affected, how it ended)")


def _cause(cause: dict[str, Any]) -> str:
    return f"{cause['service']} ({cause['signal']})" if cause.get("signal") else cause["service"]


def _verdict(cause: dict[str, Any]) -> str:
    """Whether correlation had the confirmed service, in the run the scorecard counts."""
    if cause["run_id"] is None:
        return "no correlation run had completed when it was confirmed"
    run = f"run `{str(cause['run_id'])[:8]}`, the latest before the confirmation"
    rank = cause["rank"]
    if rank is None:
        return f"correlation did not name it ({run})"
    if cause["top1"]:
        return f"correlation had it first (top-1; {run})"
    if cause["top3"]:
        return f"correlation had it in its top {TOP} (rank {rank}; {run})"
    return f"correlation ranked it {rank}, outside its top {TOP} ({run})"


def _root_cause(pm: Postmortem) -> str:
    cause = pm.root_cause
    if cause is None:
        return f"## Root cause\n\nNo root cause was confirmed. {TO_WRITE}"
    first = cause["time_to_first_hypothesis_s"]
    rows = [
        ("Confirmed cause", f"**{_cause(cause)}**"),
        ("Confirmed by", f"{cause['confirmed_by']} at {_at(cause['confirmed_at'])} (version {cause['version']})"),
        ("Replaced", cause["supersedes"] if cause.get("supersedes") not in (None, cause["service"]) else "—"),
        ("Note", cause.get("note") or "—"),
        ("Correlation", _verdict(cause)),
        ("First hypothesis naming it", "no run named it" if first is None else
         f"{duration(first)} after opening (run `{str(cause['first_named_run_id'])[:8]}`)"),
    ]
    table = "\n".join(f"| {name} | {_cell(value)} |" for name, value in rows)
    return f"## Root cause\n\n| | |\n|---|---|\n{table}"


def _at(value: Any) -> str:
    return when(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _impact(pm: Postmortem) -> str:
    if not pm.impact:
        return f"## Impact\n\nNo impact assessment was recorded. {TO_WRITE}"
    lines = ["## Impact", "", "| SLO | Burn rate | Error budget left | Estimated cost | Window | Assessed |",
             "|---|---|---|---|---|---|"]
    for a in pm.impact:
        cost = f"{a['estimated_cost']:,.0f}" if a.get("estimated_cost") is not None else "—"
        lines.append(f"| {_cell(a['slo'])} | {a['burn_rate']:.1f}× | {a['error_budget_left'] * 100:.0f}% | {cost} "
                     f"| {_cell(a.get('window'))} | {_cell(a.get('assessed_at'))} |")
    return "\n".join(lines)


def _durations(pm: Postmortem) -> str:
    rows = "\n".join(f"| {label} | {duration(pm.durations[key])} |" for key, label in DURATIONS)
    return f"## Durations\n\n| Measure | Duration |\n|---|---|\n{rows}"


def _timeline(pm: Postmortem) -> str:
    # A run's progress folds into the line of its start (the Correlation section has it
    # all); a confirmed cause is a person's conclusion: it stands out among the system's events.
    runs = {run.run_id: run for run in pm.runs}
    rows = []
    for e in pm.timeline:
        if e.type in PROGRESS and e.run_id in runs:
            continue
        what = _cell(e.summary)
        if e.type == "CorrelationStarted" and e.run_id in runs:
            what += f" — {run_summary(runs[e.run_id])}"
        rows.append(f"| {when(e.at)} | {_cell(e.actor)} | {'**' + what + '**' if e.type == 'RootCauseConfirmed' else what} |")
    return "## Timeline\n\n| Time | Who | What |\n|---|---|---|\n" + "\n".join(rows)


def run_summary(run: Run) -> str:
    """"3 sources (1 unavailable), 2 findings, 12s", as the dashboard folds a run."""
    states: dict[str, int] = {}
    for source in run.sources:
        if source["state"] != "succeeded":
            states[source["state"].replace("_", " ")] = states.get(source["state"].replace("_", " "), 0) + 1
    count = len(run.sources)
    text = f"{count} source{'' if count == 1 else 's'}"
    if states:
        text += " (" + ", ".join(f"{n} {state}" for state, n in states.items()) + ")"
    found = len(run.findings)
    text += f", {found} finding{'' if found == 1 else 's'}, "
    if run.completed_at is not None and run.started_at is not None:
        return text + duration((run.completed_at - run.started_at).total_seconds())
    return text + "not completed"


def _responders(pm: Postmortem) -> str:
    rows = "\n".join(f"| {_cell(r.actor)} | {r.actions} | {when(r.first_at)} | {_cell(', '.join(r.did))} |"
                     for r in pm.responders)
    return f"## Who did what\n\n| Who | Actions | First action | Kinds of action |\n|---|---|---|---|\n{rows}"


def _alerts(pm: Postmortem) -> str:
    if not pm.alerts:
        return "## Alerts\n\nNo alert was attached to this incident."
    rows = "\n".join(
        f"| {_cell(a['alertname'])} | `{_cell(a['fingerprint'])}` | {a['status']} | {when(a['first_seen'])} "
        f"| {when(a['resolved_at'])} |" for a in pm.alerts)
    return f"## Alerts\n\n| Alert | Fingerprint | Status | First seen | Resolved |\n|---|---|---|---|---|\n{rows}"


def _paging(pm: Postmortem) -> str:
    if not pm.paging:
        return "## Paging\n\nNobody was paged about this incident."
    rows = []
    for p in pm.paging:
        if p["type"] == "Escalated":
            what = f"escalated to level {p['level']}: {', '.join(p['receivers'])}"
            rows.append(f"| {when(p['at'])} | — | {_cell(what)} | | |")
            continue
        outcome = "sent" if p["type"] == "NotificationSent" else f"failed: {p['error']}"
        why = f"escalation level {p['level']}" if p["level"] else p["trigger"].replace("_", " ")
        rows.append(f"| {when(p['at'])} | {_cell(p['receiver'])} ({p['kind']}) | {_cell(why)} "
                    f"| {p['attempt']} | {_cell(outcome)} |")
    return "## Paging\n\n| Time | Receiver | Why | Attempt | Outcome |\n|---|---|---|---|---|\n" + "\n".join(rows)


def _correlation(pm: Postmortem, figures: Figures | None) -> str:
    if not pm.runs:
        return "## Correlation\n\nNo correlation run was started."
    charted = figures is None and any(has_chart(FindingFacts.of(f)) for run in pm.runs for f in run.findings)
    how = (f"\n\nA finding that kept its series has a chart: `GET {_base(pm)}/findings/ID/chart` (SVG); "
           f"`warroom postmortem {pm.incident['id']} -o DIR/NAME.md` writes them beside the document."
           if charted else "")
    return "## Correlation" + how + "\n\n" + "\n\n".join(_run(run, pm, figures) for run in pm.runs)


def _base(pm: Postmortem) -> str:
    return f"/v1/incidents/{pm.incident['id']}"


def _run(run: Run, pm: Postmortem, figures: Figures | None) -> str:
    head = (f"### Run `{run.run_id}`\n\nTrigger: {run.trigger or '—'}; state: {run.state}; "
            f"outcome: {run.outcome or '—'}; started {when(run.started_at)}; completed {when(run.completed_at)}.")
    rows = "\n".join(
        f"| {_cell(s['source'])} | {s['state']} | {s['attempts']} | "
        f"{'—' if s['duration_ms'] is None else str(s['duration_ms']) + ' ms'} | {_cell(s['error'])} |"
        for s in run.sources)
    sources = f"| Source | Outcome | Attempts | Duration | Error |\n|---|---|---|---|---|\n{rows}" if rows else ""
    queries = "\n".join(f"- {_cell(s['source'])}: `{query}`" for s in run.sources for query in s.get("queries") or ())
    if queries:
        sources += f"\n\nQueries the sources ran:\n\n{queries}"
    findings = "\n".join(_finding(f, pm, figures) for f in run.findings) or "No findings."
    return f"{head}\n\n{sources}\n\n#### Findings\n\n{findings}"


def _finding(f: Finding, pm: Postmortem, figures: Figures | None) -> str:
    late = " (after resolution)" if f.after_resolution else ""
    lines = [f"- **{f.source} / {f.kind}**{late}, confidence {f.confidence:.2f}: {f.summary}"]
    figure = figures.charts.get(f.finding_id) if figures else None
    if figure is not None:
        lines.append(f"\n  ![{figure.alt}]({figure.name})\n")
    elif figures is None and has_chart(FindingFacts.of(f)):
        lines.append(f"  - Chart: `GET {_base(pm)}/findings/{f.finding_id}/chart`")
    if f.changed_at is not None:
        lines.append(f"  - Changed at: {when(f.changed_at)}")
    for key in EVIDENCE_SHOWN:
        value = f.evidence.get(key)
        if value is None:
            continue
        if key in ("query", "baseline_query"):
            lines.append(f"  - {key.replace('_', ' ').capitalize()}: `{value}`")
        else:
            lines.append(f"  - {key.capitalize()}: {value if isinstance(value, str) else json.dumps(value)}")
    others = sorted(k for k in f.evidence if k not in EVIDENCE_SHOWN)
    if others:
        lines.append(f"  - Further evidence recorded: {', '.join(others)}")
    return "\n".join(lines)


def _hypothesis_text(h: Any) -> str:
    service, signal = field_of(h, "service"), field_of(h, "signal")
    text = (f"{service} ({signal})" if service and signal else service) or field_of(h, "summary") \
        or field_of(h, "title") or field_of(h, "category") or json.dumps(h, default=str)
    confidence = field_of(h, "confidence")
    return f"{text} (confidence {confidence:.2f})" if isinstance(confidence, (int, float)) else str(text)


def _hypotheses(pm: Postmortem, figures: Figures | None) -> str:
    if not pm.hypotheses:
        return "## Hypotheses\n\nCorrelation proposed no hypothesis."
    return _hypothesis_table(pm) + _graph(pm, figures)


def _graph(pm: Postmortem, figures: Figures | None) -> str:
    if figures is not None:
        return f"\n\n![{figures.graph.alt}]({figures.graph.name})" if figures.graph else ""
    if pm.hypotheses_run_id is None or not suspects_of(pm.hypotheses):
        return ""
    return (f"\n\nThe symptom and these suspects in the service graph: "
            f"`GET {_base(pm)}/graph?run_id={pm.hypotheses_run_id}` (SVG).")


def _hypothesis_table(pm: Postmortem) -> str:
    confirmed = pm.root_cause["service"] if pm.root_cause else None
    lines = ["## Hypotheses", "", "Of the latest completed run, best first.", "",
             "| # | Suspect | Signal | Path | Confidence | Changed at | Summary |", "|---|---|---|---|---|---|---|"]
    for n, h in enumerate(pm.hypotheses, 1):
        service, path, confidence = field_of(h, "service"), field_of(h, "path"), field_of(h, "confidence")
        suspect = "—" if not service else f"**{service}** (confirmed)" if service == confirmed else service
        changed = field_of(h, "started_at") or field_of(h, "changed_at")
        lines.append(
            f"| {field_of(h, 'rank') or n} | {_cell(suspect)} | {_cell(field_of(h, 'signal') or field_of(h, 'category'))} "
            f"| {_cell(' → '.join(map(str, path)) if isinstance(path, list) and path else None)} "
            f"| {f'{confidence:.2f}' if isinstance(confidence, (int, float)) else '—'} "
            f"| {_at(changed) if changed else '—'} | {_cell(field_of(h, 'summary') or field_of(h, 'title'))} |")
    return "\n".join(lines)


def _notes(pm: Postmortem) -> str:
    if not pm.notes:
        return "## Notes\n\nNo notes were added during the incident."
    return "## Notes\n\n" + "\n".join(f"- {when(n['at'])}, {n['author']}: {n['text']}" for n in pm.notes)


def _to_write() -> str:
    return (f"## Contributing factors\n\n{TO_WRITE}\n\n"
            f"## What went well\n\n{TO_WRITE}\n\n"
            f"## What went badly\n\n{TO_WRITE}\n\n"
            "## Action items\n\n| Action | Owner | Due |\n|---|---|---|\n| | | |")
