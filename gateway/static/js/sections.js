// The read-only parts of the incident view, each drawn from data alone.

import { h } from "./dom.js";
import { badge, duration, label, millis, percent, shortId, when } from "./format.js";

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([term, value]) => [h("dt", null, term), h("dd", null, value)]));
}

export function overview(incident) {
  const d = incident.durations || {};
  const ack = incident.acknowledged_at
    ? [when(incident.acknowledged_at), incident.acknowledged_by ? ` by ${incident.acknowledged_by}` : ""]
    : "not yet";
  return [
    incident.description ? h("p", { class: "description" }, incident.description) : null,
    facts([
      ["Opened", [when(incident.opened_at), incident.opened_by?.id ? ` by ${incident.opened_by.id}` : ""]],
      ["Acknowledged", ack],
      ["Mitigated", when(incident.mitigated_at)],
      ["Resolved", when(incident.resolved_at)],
      ["Time to acknowledge", duration(d.time_to_acknowledge_s)],
      ["Time to mitigate", duration(d.time_to_mitigate_s)],
      ["Time to resolve", duration(d.time_to_resolve_s)],
      ["Last change", when(incident.updated_at)],
    ]),
    labels(incident.labels),
  ];
}

function labels(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return null;
  return h("ul", { class: "labels", "aria-label": "Labels" },
    entries.map(([key, value]) => h("li", null, h("code", null, `${key}=${value}`))));
}

export function impact(incident) {
  const i = incident.impact;
  if (!i) return h("p", { class: "muted" }, "No impact assessed yet.");
  return facts([
    ["SLO", i.slo ?? "—"],
    ["Burn rate", i.burn_rate === undefined ? "—" : `${Number(i.burn_rate).toFixed(1)}×`],
    ["Error budget left", percent(i.error_budget_left, 1)],
    ["Estimated cost", i.estimated_cost === null || i.estimated_cost === undefined
      ? "—" : Number(i.estimated_cost).toLocaleString()],
    ["Window", i.window ?? "—"],
    ["Assessed", when(i.assessed_at)],
  ]);
}

// -- correlation -----------------------------------------------------------------------

/**
 * Runs newest first; the latest in full, earlier ones folded away. `cause` is the
 * incident's confirmed root cause; `confirmButton(hypothesis, confirmed)` gives the
 * one-click confirm of a hypothesis, or null where the person may not confirm.
 */
export function correlation(runs, { cause = null, confirmButton = () => null, graph = () => null } = {}) {
  if (!runs.length) return h("p", { class: "muted" }, "No correlation run yet.");
  const [latest, ...earlier] = runs;
  // The service graph of the newest run whose hypotheses name suspects.
  const graphed = runs.find((r) => r.graph);
  const draw = (r) => run(r, { cause, confirmButton, graph: r === graphed ? graph : () => null });
  return [
    draw(latest),
    earlier.length
      ? h("details", { class: "earlier-runs", dataset: { key: "earlier-runs" } },
        h("summary", null, `Earlier runs (${earlier.length})`), earlier.map(draw))
      : null,
  ];
}

function run(r, options) {
  const state = r.state === "completed" ? r.outcome || "completed" : r.state;
  return h("article", { class: "run", dataset: { runId: r.run_id, state } },
    h("p", { class: "run-head" },
      h("span", null, `Run ${shortId(r.run_id)}`), " ", badge("run", state),
      h("span", { class: "muted" }, " ", label(r.trigger || "manual"), " · started "), when(r.started_at),
      r.completed_at ? [h("span", { class: "muted" }, " · completed "), when(r.completed_at)] : null),
    h("table", { class: "sources" },
      h("caption", { class: "visually-hidden" }, `Sources of run ${shortId(r.run_id)}`),
      h("thead", null, h("tr", null,
        ["Source", "State", "Attempts", "Duration"].map((name) => h("th", { scope: "col" }, name)))),
      r.sources.map((s) => source(s, r.run_id))),
    hypotheses(r.hypotheses, options),
    r.graph ? options.graph(r) : null);
}

/** One source: a row of facts, and under it, full width, its error or its queries. */
function source(s, runId) {
  const queries = s.queries || [];
  const detail = [];
  if (s.error) detail.push(h("p", { class: "source-error" }, s.error));
  const code = (q) => h("pre", null, h("code", null, typeof q === "string" ? q : JSON.stringify(q)));
  if (s.state === "no_data" && queries.length) {
    // The query that found nothing is the finding: a wrong metric or label shows here.
    detail.push(h("p", { class: "muted" }, "No series for:"), queries.map(code));
  } else if (queries.length) {
    detail.push(h("details", { class: "queries", dataset: { key: `queries:${runId}:${s.source}` } },
      h("summary", null, `${queries.length} quer${queries.length === 1 ? "y" : "ies"}`),
      queries.map(code)));
  }
  return h("tbody", { class: "source", dataset: { sourceName: s.source, state: s.state } },
    h("tr", null,
      h("th", { scope: "row" }, s.source),
      h("td", null, badge("source", s.state)),
      h("td", null, s.attempts ?? "—"),
      h("td", null, millis(s.duration_ms))),
    detail.length ? h("tr", { class: "source-detail" }, h("td", { colspan: 4 }, detail)) : null);
}

function hypotheses(list, { cause, confirmButton }) {
  if (!list || !list.length) return null;
  return h("div", { class: "hypotheses" },
    h("h4", null, "Hypotheses"),
    h("ol", null, list.map((hyp) => hypothesis(hyp, cause, confirmButton))));
}

/**
 * One hypothesis: its suspect service, the signal that moved there, its confidence and
 * its path to the symptom. Hypotheses of older runs carry only a sentence.
 */
function hypothesis(hyp, cause, confirmButton) {
  const service = typeof hyp.service === "string" && hyp.service ? hyp.service : null;
  const confirmed = Boolean(service && cause && cause.service === service);
  const text = hyp.summary || hyp.title || (service ? null : hyp.category || "hypothesis");
  const changed = hyp.started_at || hyp.changed_at;
  return h("li", { class: confirmed ? "hypothesis confirmed" : "hypothesis",
    dataset: { service: service ?? "", confirmed: confirmed ? "true" : "false" } },
  h("p", { class: "hypothesis-head" },
    h("span", { class: "confidence" }, percent(hyp.confidence)),
    service ? h("strong", { class: "suspect" }, service) : null,
    hyp.signal ? badge("signal", hyp.signal) : null,
    confirmed ? h("span", { class: "badge cause" }, "Confirmed cause") : null,
    service ? confirmButton(hyp, confirmed) : null),
  path(hyp.path),
  text ? h("p", { class: "hypothesis-text" }, text) : null,
  changed || hyp.sources?.length
    ? h("p", { class: "muted small" }, changed ? ["Changed at ", when(changed)] : null,
      hyp.sources?.length ? `${changed ? " · " : ""}${hyp.sources.join(", ")}` : null)
    : null);
}

/** suspect → … → symptom service, as the service graph connects them. */
function path(services) {
  if (!Array.isArray(services) || !services.length) return null;
  return h("p", { class: "path", "aria-label": `Path: ${services.join(", then ")}` },
    services.map((name, i) => [i ? h("span", { class: "arrow", "aria-hidden": "true" }, " → ") : null,
      h("code", null, name)]));
}

// -- root cause ------------------------------------------------------------------------

/** The confirmed root cause, or that there is none yet. */
export function rootCause(incident) {
  const c = incident.root_cause;
  if (!c) return h("p", { class: "muted", dataset: { rootCause: "" } }, "Not confirmed yet.");
  const replaced = c.supersedes && c.supersedes !== c.service ? ` · replaced ${c.supersedes}` : "";
  return h("div", { class: "root-cause", dataset: { rootCause: c.service } },
    h("p", { class: "cause" }, h("strong", null, c.service), c.signal ? [" ", badge("signal", c.signal)] : null),
    h("p", { class: "muted small" }, `Confirmed by ${c.confirmed_by} · `, when(c.confirmed_at), replaced),
    c.note ? h("p", { class: "note-text" }, c.note) : null);
}

// -- findings --------------------------------------------------------------------------

/** Findings, most confident first; `chart(finding)` gives the chart of one whose evidence holds a series. */
export function findings(list, { chart = () => null } = {}) {
  if (!list.length) return h("p", { class: "muted" }, "No findings yet.");
  return h("ol", { class: "findings" }, list.map((f) => finding(f, chart)));
}

function finding(f, chart) {
  const { query, window, links, link, values, ...rest } = f.evidence || {};
  const service = f.service || (typeof rest.service === "string" ? rest.service : null);
  if (Array.isArray(values)) rest.values = `${values.length} points${f.chart ? " (drawn above)" : ""}`;
  return h("li", { class: "finding", dataset: { findingId: f.finding_id, service: service ?? "" } },
    h("p", { class: "finding-head" },
      h("meter", { min: 0, max: 1, value: f.confidence, "aria-label": "confidence" }),
      h("span", { class: "confidence" }, percent(f.confidence)),
      service ? h("strong", { class: "finding-service" }, service) : null,
      h("span", { class: "finding-source" }, `${f.source} · ${label(f.kind)}`),
      f.after_resolution ? h("span", { class: "badge late" }, "After resolution") : null),
    h("p", null, f.summary),
    f.chart ? chart(f) : null,
    f.changed_at ? h("p", { class: "muted" }, "Changed at ", when(f.changed_at)) : null,
    query ? h("pre", { class: "query" }, h("code", null, typeof query === "string" ? query : JSON.stringify(query))) : null,
    window ? h("p", { class: "muted" }, "Window: ", interval(window)) : null,
    evidenceLinks([].concat(link ?? [], Array.isArray(links) ? links : links && typeof links === "object" ? Object.values(links) : [])),
    Object.keys(rest).length
      ? h("details", { dataset: { key: `evidence:${f.finding_id}` } }, h("summary", null, "More evidence"),
        h("pre", null, h("code", null, JSON.stringify(rest, null, 2))))
      : null);
}

/** An ISO 8601 interval ("start/end") as two times; anything else as written ("5m"). */
function interval(text) {
  const parts = typeof text === "string" ? text.split("/") : [];
  if (parts.length !== 2 || parts.some((p) => Number.isNaN(Date.parse(p)))) return String(text);
  return [when(parts[0]), " – ", when(parts[1])];
}

function evidenceLinks(items) {
  const safe = items.filter((link) => typeof link === "string" && /^https?:\/\//i.test(link));
  if (!safe.length) return null;
  // A source's query link is a long URL: it reads as where it leads, in full on hover.
  return h("ul", { class: "links" }, safe.map((link) =>
    h("li", null, h("a", { href: link, title: link, rel: "noreferrer noopener", target: "_blank" },
      `Open at ${new URL(link).host}`))));
}

// -- from the timeline: alerts, notes (the timeline itself: timeline.js) -----------------

/** Alerts as the timeline tells them: attached, and resolved later or still firing. */
export function alerts(entries, firing) {
  const byFingerprint = new Map();
  for (const e of entries) {
    if (e.type === "AlertAttached") {
      const known = byFingerprint.get(e.data.fingerprint);
      byFingerprint.set(e.data.fingerprint, {
        name: e.data.alertname || known?.name || e.data.fingerprint,
        fingerprint: e.data.fingerprint,
        since: known?.since ?? e.data.starts_at ?? e.occurred_at,
        labels: e.data.labels || {}, summary: e.data.annotations?.summary,
        status: "firing", resolved: null,
      });
    } else if (e.type === "AlertResolved") {
      const known = byFingerprint.get(e.data.fingerprint) ?? { name: e.data.fingerprint, fingerprint: e.data.fingerprint, labels: {} };
      byFingerprint.set(e.data.fingerprint, { ...known, status: "resolved", resolved: e.data.ends_at ?? e.occurred_at });
    }
  }
  const rows = [...byFingerprint.values()];
  const count = h("p", null, `${firing ?? 0} firing`);
  if (!rows.length) return [count, h("p", { class: "muted" }, "No alerts attached.")];
  return [count, h("ul", { class: "alerts" }, rows.map((a) => h("li", { dataset: { fingerprint: a.fingerprint } },
    badge("alert", a.status), " ", h("strong", null, a.name),
    a.summary ? ` — ${a.summary}` : null,
    h("span", { class: "muted" }, " since "), when(a.since),
    a.resolved ? [h("span", { class: "muted" }, " · resolved "), when(a.resolved)] : null)))];
}

export function notes(entries) {
  const list = entries.filter((e) => e.type === "NoteAdded");
  if (!list.length) return h("p", { class: "muted" }, "No notes yet.");
  return h("ol", { class: "notes" }, list.slice().reverse().map((e) => h("li", { dataset: { version: e.version } },
    h("p", { class: "note-head" }, h("strong", null, e.data.author || e.actor?.id || "someone"), " · ", when(e.occurred_at)),
    h("p", { class: "note-text" }, e.data.text))));
}

// -- paging (the delivery ledger) ------------------------------------------------------

const PAGING = new Set(["NotificationSent", "NotificationFailed", "Escalated"]);

/** Every page attempt and escalation, newest first: who, why, and how it went. */
export function paging(entries) {
  const list = entries.filter((e) => PAGING.has(e.type));
  if (!list.length) return h("p", { class: "muted" }, "Nobody paged yet.");
  return h("ol", { class: "paging" }, list.slice().reverse().map((e) => {
    const d = e.data;
    if (e.type === "Escalated") {
      return h("li", { dataset: { version: e.version, type: e.type } },
        h("strong", null, `Escalated to level ${d.level}`), `: ${(d.receivers || []).join(", ")} · `, when(e.occurred_at));
    }
    const why = d.level ? `escalation level ${d.level}` : String(d.trigger || "").replace("_", " ");
    const outcome = e.type === "NotificationSent"
      ? "sent"
      : `failed${d.will_retry ? ", will retry" : ""}: ${d.error}`;
    return h("li", { dataset: { version: e.version, type: e.type } },
      h("strong", null, d.receiver), ` (${d.kind}, ${why}) attempt ${d.attempt}: ${outcome} · `, when(e.occurred_at));
  }));
}
