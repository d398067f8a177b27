// The scorecard (#/scorecard): how often correlation named the root cause people
// confirmed, and how soon. Refetched when a cause is confirmed or a run completes.

import { coalesced, fill, h } from "./dom.js";
import { duration, percent, when } from "./format.js";

const REFETCH_ON = new Set(["RootCauseConfirmed", "CorrelationCompleted"]);

export class ScorecardView {
  constructor({ api, report }) {
    Object.assign(this, { api, report });
    this.root = document.getElementById("scorecard");
    this.visible = false;
    this.card = null;
    this.sync = coalesced(() => this.fetch(), (error) => {
      if (error.status !== 401) this.report(`Could not load the scorecard: ${error.describe ? error.describe() : error}`);
    });
  }

  /** Show it (true) or hide it; shown, it loads at once. */
  show(visible, { focus = false } = {}) {
    this.visible = visible;
    this.root.hidden = !visible;
    if (!visible) return Promise.resolve();
    this.draw();
    if (focus) this.root.querySelector("h2").focus();
    return this.sync();
  }

  /** A change from the stream. */
  changed(change) {
    if (this.visible && REFETCH_ON.has(change.type)) this.sync();
  }

  refresh() {
    return this.visible ? this.sync() : Promise.resolve();
  }

  async fetch() {
    if (!this.visible) return;
    const { body } = await this.api.get("/v1/scorecard", { limit: 200 });
    this.card = body;
    if (this.visible) this.draw();
  }

  draw() {
    const card = this.card;
    fill(this.root,
      h("h2", { id: "scorecard-title", tabindex: "-1" }, "Root-cause scorecard"),
      h("p", { class: "muted" }, "For every incident whose root cause was confirmed: whether the latest correlation ",
        "run completed before the confirmation had the confirmed service first (top-1) or among its first three ",
        "suspects (top-3), and how long after opening a run first named it."),
      card ? this.summary(card) : h("p", { class: "muted" }, "Loading…"),
      card ? this.table(card) : null);
  }

  summary(card) {
    const rate = (r) => (r.rate === null ? "—" : percent(r.rate));
    const t = card.time_to_first_hypothesis;
    const figure = (name, value, detail) => h("div", { class: "figure", dataset: { figure: name } },
      h("p", { class: "figure-value" }, value), h("p", { class: "figure-label" }, detail));
    return h("div", { class: "figures" },
      figure("n", String(card.n), card.n === 1 ? "incident with a confirmed cause" : "incidents with a confirmed cause"),
      figure("top1", rate(card.top1), `top-1 (${card.top1.hits} of ${card.n})`),
      figure("top3", rate(card.top3), `top-3 (${card.top3.hits} of ${card.n})`),
      figure("median", duration(t.median_s), `median time to the first hypothesis naming it (${t.named} named, `
        + `${t.never_named} never)`));
  }

  table(card) {
    if (!card.incidents.length) return h("p", { class: "muted" }, "No root cause has been confirmed yet.");
    const mark = (hit) => h("span", { class: hit ? "hit" : "miss" }, hit ? "yes" : "no");
    return h("table", { class: "scored" },
      h("caption", { class: "visually-hidden" }, "Incidents with a confirmed root cause, newest confirmation first"),
      h("thead", null, h("tr", null, ["Incident", "Confirmed cause", "Rank", "Top-1", "Top-3", "First named after",
        "Confirmed"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", null, card.incidents.map((item) => h("tr", { dataset: { incidentId: item.incident_id } },
        h("td", null, h("a", { href: `#/incidents/${item.incident_id}` }, item.title || item.incident_id),
          h("span", { class: "muted small" }, ` ${item.service ?? ""}`)),
        h("td", null, h("strong", null, item.root_cause.service),
          item.root_cause.signal ? h("span", { class: "muted" }, ` (${item.root_cause.signal})`) : null),
        h("td", { dataset: { rank: item.rank ?? "" } }, item.rank ?? (item.run_id ? "not named" : "no run")),
        h("td", null, mark(item.top1)),
        h("td", null, mark(item.top3)),
        h("td", null, duration(item.time_to_first_hypothesis_s)),
        h("td", null, item.root_cause.confirmed_by, " · ", when(item.root_cause.confirmed_at))))));
  }
}
