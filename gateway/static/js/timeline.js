// The incident's timeline, newest first, for people to read: what people did, status
// changes, alerts and hypotheses stand out; a correlation run's progress (each source
// starting and completing, each finding) folds under the run it belongs to, in one line
// that says how it went ("3 sources, 2 findings, 12 s"). The postmortem folds alike
// (projections.timeline.PROGRESS).

import { h } from "./dom.js";
import { duration, shortId, typeLabel, when } from "./format.js";

const PROGRESS = new Set(["CorrelationSourceStarted", "CorrelationSourceCompleted", "FindingRecorded"]);
// What a reader looks for first; everything else a person did stands out too.
const STANDS_OUT = {
  IncidentOpened: "opened", StatusChanged: "status", SeverityChanged: "status",
  AlertAttached: "alert", AlertResolved: "alert-resolved",
  CorrelationCompleted: "hypotheses", RootCauseConfirmed: "cause",
  NotificationFailed: "alert", Escalated: "status",
};

/** Each run's folded progress, by run id, in log order. */
function runsOf(entries) {
  const runs = new Map();
  const of = (id) => {
    if (!runs.has(id)) runs.set(id, { id, head: null, completed: null, progress: [] });
    return runs.get(id);
  };
  for (const e of entries) {
    const id = e.data?.run_id;
    if (!id) continue;
    if (e.type === "CorrelationStarted") of(id).head = e;
    else if (e.type === "CorrelationCompleted") of(id).completed = e;
    else if (PROGRESS.has(e.type)) of(id).progress.push(e);
  }
  return runs;
}

/** "3 sources (1 unavailable), 2 findings, 12 s" — or "…, running" while it runs. */
function runSummary(run) {
  const sources = new Set(run.head?.data?.sources ?? []);
  const outcomes = new Map();
  let findings = 0;
  for (const e of run.progress) {
    if (e.data.source) sources.add(e.data.source);
    if (e.type === "FindingRecorded") findings += 1;
    if (e.type === "CorrelationSourceCompleted" && e.data.outcome !== "succeeded") {
      const outcome = e.data.outcome.replace(/_/g, " ");
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  }
  const notes = [...outcomes].map(([outcome, n]) => `${n} ${outcome}`);
  const parts = [
    `${sources.size} source${sources.size === 1 ? "" : "s"}${notes.length ? ` (${notes.join(", ")})` : ""}`,
    `${findings} finding${findings === 1 ? "" : "s"}`,
  ];
  const first = run.head ?? run.progress[0];
  if (run.completed && first) {
    parts.push(duration((Date.parse(run.completed.occurred_at) - Date.parse(first.occurred_at)) / 1000));
  } else {
    parts.push("running");
  }
  return parts.join(", ");
}

function entry(e) {
  const person = e.actor?.kind === "user";
  const kind = STANDS_OUT[e.type];
  const classes = ["tl-entry", person ? "tl-person" : null, kind ? `tl-key tl-${kind}` : null,
    !person && !kind ? "tl-quiet" : null].filter(Boolean);
  return h("li", { class: classes.join(" "), dataset: { version: e.version, type: e.type } },
    h("span", { class: "tl-when" }, when(e.occurred_at)),
    h("span", { class: "tl-what" },
      h("span", { class: "tl-type" }, typeLabel(e.type)),
      h("span", null, e.summary || ""),
      e.actor ? h("span", { class: "tl-actor" }, person ? e.actor.id : `${e.actor.kind} ${e.actor.id}`) : null),
    h("span", { class: "tl-version muted", "aria-label": `version ${e.version}` }, `v${e.version}`));
}

/** A run's start, with its progress folded under it (newest first inside too). */
function folded(run) {
  const head = run.head ?? run.progress[0];
  const summary = runSummary(run);
  return h("li", { class: "tl-run", dataset: { foldedRun: run.id, ...(run.head ? { version: run.head.version, type: run.head.type } : {}) } },
    h("span", { class: "tl-when" }, when(head.occurred_at)),
    h("span", { class: "tl-what" },
      h("span", { class: "tl-type" }, `Correlation run ${shortId(run.id)}`),
      run.head ? h("span", null, run.head.summary || "") : null,
      h("details", { class: "tl-fold", dataset: { key: `tl-run:${run.id}` } },
        h("summary", { "aria-label": `Progress of run ${shortId(run.id)}: ${summary}` }, summary),
        h("ol", { class: "tl-progress", "aria-label": `Progress of run ${shortId(run.id)}, newest first` },
          run.progress.slice().reverse().map(entry)))),
    h("span", { class: "tl-version muted", "aria-label": run.head ? `version ${run.head.version}` : null },
      run.head ? `v${run.head.version}` : ""));
}

export function timeline(entries) {
  if (!entries.length) return h("p", { class: "muted" }, "Nothing yet.");
  const runs = runsOf(entries);
  const rows = [];
  const placed = new Set();
  for (const e of entries) {
    const id = e.data?.run_id;
    const run = id ? runs.get(id) : null;
    const foldable = run && (e.type === "CorrelationStarted" || PROGRESS.has(e.type));
    if (!foldable) {
      rows.push(entry(e));
    } else if (!placed.has(id)) {
      // Where the run started (or, without its start, where its progress began).
      placed.add(id);
      rows.push(folded(run));
    }
  }
  // Scrolls on its own, so it takes focus for keyboard scrolling.
  return h("ol", { class: "timeline", tabindex: 0, "aria-label": "Timeline, newest first" }, rows.reverse());
}
