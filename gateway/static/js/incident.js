// One incident in full: header, actions, overview, impact, root cause, correlation,
// findings, alerts, notes and timeline. Stream messages about it update the header at once and refetch
// only the parts that event type can change.

import { Actions } from "./actions.js";
import { coalesced, fill, h, perFrame } from "./dom.js";
import { Pictures } from "./pictures.js";
import { badge, shortId } from "./format.js";
import * as sections from "./sections.js";
import { timeline } from "./timeline.js";

const CORRELATION_EVENTS = new Set([
  "CorrelationStarted", "CorrelationSourceStarted", "CorrelationSourceCompleted", "CorrelationCompleted",
]);
const TIMELINE_PAGE = 1000;

export class IncidentView {
  constructor({ api, store, mayRespond, report }) {
    Object.assign(this, { api, store, mayRespond, report });
    this.root = document.getElementById("incident");
    this.emptyText = document.getElementById("incident-empty");
    this.id = null;
    this.dirty = new Set();
    this.openDetails = new Set();
    this.pictures = new Pictures(() => this.api, report);
    this.draw = perFrame(() => this.redraw());
    const failed = (what) => (error) => {
      if (error.status !== 401) this.report(`Could not load ${what}: ${error.describe ? error.describe() : error}`);
    };
    this.syncIncident = coalesced(() => this.fetchIncident(), failed("the incident"));
    this.syncTimeline = coalesced(() => this.fetchTimeline(), failed("the timeline"));
    this.syncCorrelation = coalesced(() => this.fetchCorrelation(), failed("correlation progress"));
    this.syncFindings = coalesced(() => this.fetchFindings(), failed("findings"));
    // Folded <details> stay as the person left them across redraws.
    this.root.addEventListener("toggle", (event) => {
      const key = event.target.dataset?.key;
      if (!key) return;
      if (event.target.open) this.openDetails.add(key);
      else this.openDetails.delete(key);
    }, true);
  }

  /** Show incident `id` (null: none); `focus` moves keyboard focus to its heading. */
  async show(id, { focus = false } = {}) {
    if (id === this.id) return;
    this.id = id;
    this.entries = [];
    this.runs = [];
    this.findings = [];
    this.missing = false;
    this.drawnCause = undefined;
    this.openDetails.clear();
    this.pictures.clear();
    if (!id) {
      fill(this.root, this.emptyText);
      return;
    }
    this.build();
    this.incident = this.store.get(id) ?? null;
    this.markAll();
    const loaded = Promise.all([this.syncIncident(), this.syncTimeline(), this.syncCorrelation(), this.syncFindings()]);
    if (focus) this.heading.focus();
    await loaded;
  }

  /** Refetch everything shown (after a reset of the stream). */
  refresh() {
    if (!this.id) return Promise.resolve();
    this.entries = [];
    return Promise.all([this.syncIncident(), this.syncTimeline(), this.syncCorrelation(), this.syncFindings()]);
  }

  /** A change from the stream, already in the store. */
  changed(change) {
    if (change.incident_id !== this.id) return;
    this.takeIncident(this.store.get(this.id));
    this.syncTimeline();
    if (CORRELATION_EVENTS.has(change.type)) this.syncCorrelation();
    if (change.type === "FindingRecorded") this.syncFindings();
  }

  // -- fetching ------------------------------------------------------------------------

  async fetchIncident(minVersion) {
    const id = this.id;
    if (!id) return;
    try {
      const { body } = await this.api.get(`/v1/incidents/${id}`, { min_version: minVersion });
      if (id !== this.id) return;
      this.store.put(body);
      this.takeIncident(this.store.get(id));
    } catch (error) {
      if (id !== this.id) return;
      if (error.status === 404) {
        this.missing = true;
        this.mark("head");
        return;
      }
      throw error;
    }
  }

  async fetchTimeline() {
    const id = this.id;
    if (!id) return;
    for (;;) {
      const after = this.entries.length ? this.entries[this.entries.length - 1].version : 0;
      let body;
      try {
        ({ body } = await this.api.get(`/v1/incidents/${id}/timeline`, { after_version: after, limit: TIMELINE_PAGE }));
      } catch (error) {
        if (error.status === 404) return; // not in the read model yet; its first change brings it
        throw error;
      }
      if (id !== this.id) return;
      const last = this.entries.length ? this.entries[this.entries.length - 1].version : 0;
      const fresh = body.filter((entry) => entry.version > last);
      if (fresh.length) {
        this.entries = this.entries.concat(fresh);
        this.mark("timeline");
      }
      if (body.length < TIMELINE_PAGE) return;
    }
  }

  async fetchCorrelation() {
    const id = this.id;
    if (!id) return;
    try {
      const { body } = await this.api.get(`/v1/incidents/${id}/correlation`);
      if (id !== this.id) return;
      this.runs = body;
      this.mark("correlation");
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }

  async fetchFindings() {
    const id = this.id;
    if (!id) return;
    try {
      const { body } = await this.api.get(`/v1/incidents/${id}/findings`);
      if (id !== this.id) return;
      this.findings = body;
      this.mark("findings");
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }

  takeIncident(incident) {
    if (!incident || incident === this.incident) return;
    this.incident = incident;
    this.missing = false;
    this.mark("head");
  }

  // -- drawing -------------------------------------------------------------------------

  mark(part) {
    this.dirty.add(part);
    this.draw();
  }

  markAll() {
    for (const part of ["head", "timeline", "correlation", "findings"]) this.dirty.add(part);
    this.draw();
  }

  build() {
    const section = (key, title, ...extra) => {
      const body = h("div", { class: "section-body" });
      this.parts[key] = body;
      return h("section", { class: `panel panel-${key}`, "aria-labelledby": `${key}-title` },
        h("h3", { id: `${key}-title` }, title), ...extra, body);
    };
    this.parts = {};
    this.heading = h("h2", { id: "incident-title", tabindex: "-1" }, "Loading…");
    this.meta = h("p", { class: "incident-meta" });
    this.actions = new Actions({
      api: this.api,
      mayRespond: this.mayRespond,
      current: () => this.incident,
      settled: (version) => this.syncIncident().then(() => this.ensureVersion(version)),
      stale: (version) => this.ensureVersion(version),
    });
    // The confirmed cause is redrawn as the incident changes; the form beside it is not,
    // so what someone is typing there survives every change that arrives meanwhile.
    this.parts.cause = h("div", { class: "section-body" });
    const cause = h("section", { class: "panel panel-cause", "aria-labelledby": "cause-title" },
      h("h3", { id: "cause-title" }, "Root cause"), this.parts.cause, this.actions.causeForm);
    this.body = h("div", { class: "incident-body" },
      h("div", { class: "column" },
        section("overview", "Overview"),
        section("impact", "Impact"),
        section("alerts", "Alerts"),
        section("paging", "Paging"),
        section("notes", "Notes")),
      h("div", { class: "column wide" },
        cause,
        section("correlation", "Correlation"),
        section("findings", "Findings"),
        section("timeline", "Timeline", h("p", { class: "muted small" }, "Newest first"))));
    fill(this.root, h("header", { class: "incident-head" }, this.heading, this.meta), this.actions.element, this.body);
  }

  /** Make sure the view reaches `version` even if the stream is behind (or reconnecting). */
  async ensureVersion(version) {
    if (!version || !this.incident || this.incident.version >= version) return;
    await this.fetchIncident(version).catch(() => {});
    this.syncTimeline();
  }

  redraw() {
    if (!this.id || !this.parts) return;
    const dirty = this.dirty;
    this.dirty = new Set();
    const incident = this.incident;
    if (dirty.has("head")) {
      if (this.missing) {
        this.heading.textContent = "Incident not found";
        fill(this.meta, `No incident ${this.id} is known (yet).`);
      } else if (incident) {
        this.heading.textContent = incident.title;
        fill(this.meta,
          badge("status", incident.status), " ", badge("severity", incident.severity), " ",
          h("span", null, incident.service), " ",
          h("span", { class: "version", dataset: { version: incident.version } }, `version ${incident.version}`), " ",
          h("span", { class: "muted", title: incident.id }, `#${shortId(incident.id)}`),
          incident.root_cause
            ? [" ", h("span", { class: "badge cause", dataset: { cause: incident.root_cause.service } },
              `Root cause: ${incident.root_cause.service}`)]
            : null);
        this.actions.sync(incident);
        this.actions.element.hidden = false;
        fill(this.parts.overview, sections.overview(incident));
        fill(this.parts.impact, sections.impact(incident));
        fill(this.parts.cause, sections.rootCause(incident));
        // The hypotheses mark the confirmed one: redraw them when it changes.
        const cause = JSON.stringify(incident.root_cause ?? null);
        if (cause !== this.drawnCause) dirty.add("correlation");
      }
      this.body.hidden = this.missing;
      this.actions.element.hidden = this.missing || !incident;
    }
    if (dirty.has("head") || dirty.has("timeline")) {
      this.restoring(this.parts.alerts, () => sections.alerts(this.entries, incident?.alerts_firing));
    }
    if (dirty.has("timeline")) {
      fill(this.parts.notes, sections.notes(this.entries));
      fill(this.parts.paging, sections.paging(this.entries));
      this.restoring(this.parts.timeline, () => timeline(this.entries));
    }
    if (dirty.has("correlation")) {
      this.drawnCause = JSON.stringify(incident?.root_cause ?? null);
      this.restoring(this.parts.correlation, () => sections.correlation(this.runs, {
        cause: incident?.root_cause ?? null,
        confirmButton: (hypothesis, confirmed) => this.actions.confirmButton(hypothesis, confirmed),
        graph: (run) => this.graphOf(run),
      }));
    }
    if (dirty.has("findings")) {
      this.restoring(this.parts.findings, () => sections.findings(this.findings, { chart: (f) => this.chartOf(f) }));
    }
  }

  /** A finding's chart; it marks the deploys and restarts of its run, so a run's new finding redraws it. */
  chartOf(f) {
    const ofRun = this.findings.filter((other) => other.run_id === f.run_id).length;
    return this.pictures.slot(f.chart, `${f.chart}|${ofRun}`, { label: `chart of ${f.kind}`, kind: "chart" });
  }

  /** A run's part of the service graph; it marks the confirmed cause. */
  graphOf(run) {
    const cause = this.incident?.root_cause?.service ?? "";
    return this.pictures.slot(run.graph, `${run.graph}|${cause}`, { label: "service graph", kind: "graph" });
  }

  /** Redraw `el`, keeping open the <details> the person opened (by their data-key). */
  restoring(el, draw) {
    fill(el, draw());
    for (const details of el.querySelectorAll("details[data-key]")) {
      if (this.openDetails.has(details.dataset.key)) details.open = true;
    }
  }
}
