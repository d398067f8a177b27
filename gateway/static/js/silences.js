// Silences (#/silences, SPEC §15): the silences and maintenance windows in force or
// pending (and, on request, the ended ones), what each swallowed, and for a responder a
// form to create one and a button to expire one. Refetched when a silence event arrives
// and when a shown silence starts or ends, which no event announces.

import { coalesced, fill, h } from "./dom.js";
import { label, shortId, when } from "./format.js";
import { SilenceForm } from "./silence_form.js";

const REFETCH_ON = new Set(["SilenceCreated", "AlertSilenced", "SilenceExpired"]);
const RECENT_SHOWN = 5;
const BOUNDARY_SLACK_MS = 1000; // refetch just after a start or end, never just before
const BOUNDARY_MAX_MS = 3600_000;

/** `service = "checkout"`: the label, the operator and the value as a quoted string. */
export function matcherText({ label: name, op, value }) {
  return `${name} ${op} ${JSON.stringify(value)}`;
}

function matchersOf(silence) {
  return h("ul", { class: "matchers", "aria-label": "Matchers" },
    silence.matchers.map((m) => h("li", null, h("code", null, matcherText(m)))));
}

export class SilencesView {
  constructor({ api, mayRespond, report }) {
    Object.assign(this, { api, mayRespond, report });
    this.root = document.getElementById("silences");
    this.visible = false;
    this.silences = null;
    this.builtFor = null; // the mayRespond the skeleton was built for
    this.timer = null;
    this.sync = coalesced(() => this.fetch(), (error) => {
      if (error.status !== 401) this.report(`Could not load silences: ${error.describe ? error.describe() : error}`);
    });
  }

  /** Show it (true) or hide it; shown, it loads at once. */
  show(visible, { focus = false } = {}) {
    this.visible = visible;
    this.root.hidden = !visible;
    if (!visible) {
      clearTimeout(this.timer);
      return Promise.resolve();
    }
    if (this.builtFor !== this.mayRespond) this.build();
    this.draw();
    if (focus) this.heading.focus();
    return this.sync();
  }

  /** A change from the stream (silence changes carry no incident). */
  changed(change) {
    if (this.visible && REFETCH_ON.has(change.type)) this.sync();
  }

  refresh() {
    return this.visible ? this.sync() : Promise.resolve();
  }

  /** Forget what was shown (sign-out): the next session may see other things. */
  clear() {
    this.silences = null;
    this.builtFor = null;
    this.root.replaceChildren();
  }

  build() {
    this.builtFor = this.mayRespond;
    this.heading = h("h2", { id: "silences-title", tabindex: "-1" }, "Silences");
    this.showExpired = h("input", { id: "silences-expired", type: "checkbox", onchange: () => this.sync() });
    // Kept across redraws of the list it sits in, so its state and focus survive a refetch.
    this.expiredToggle = h("label", { class: "check", for: "silences-expired" }, this.showExpired,
      " Show expired silences too");
    this.message = h("p", { class: "action-message", role: "status", "aria-live": "polite" });
    this.problem = h("p", { class: "action-problem", role: "alert" });
    this.listed = h("div", { class: "silence-lists" });
    this.form = this.mayRespond ? new SilenceForm({ api: () => this.api, created: () => this.sync() }) : null;
    fill(this.root,
      h("div", { class: "silences-head" }, this.heading,
        h("p", { class: "muted" }, "An alert matching every matcher of an active silence or an open maintenance ",
          "window opens no incident and pages no one; it is recorded on the silence instead.")),
      this.form ? this.form.element : h("p", { class: "muted small" }, "Responders create and expire silences here."),
      this.problem, this.message, this.listed);
  }

  async fetch() {
    if (!this.visible) return;
    const { body } = await this.api.get("/v1/silences", { expired: this.showExpired.checked ? "true" : null });
    this.silences = body.silences;
    if (this.visible) {
      this.draw();
      this.refetchAtNextBoundary();
    }
  }

  /** A pending silence starts, an active one ends, a window opens or closes: by the clock alone. */
  refetchAtNextBoundary() {
    clearTimeout(this.timer);
    const now = Date.now();
    const next = Math.min(...this.silences
      .filter((s) => s.state !== "expired")
      .flatMap((s) => [s.starts_at, s.ends_at])
      .filter(Boolean)
      .map((at) => Date.parse(at))
      .filter((at) => at > now));
    if (!Number.isFinite(next)) return;
    this.timer = setTimeout(() => this.sync(), Math.min(next - now + BOUNDARY_SLACK_MS, BOUNDARY_MAX_MS));
  }

  draw() {
    if (!this.listed) return;
    if (this.silences === null) {
      fill(this.listed, h("p", { class: "muted" }, "Loading…"));
      return;
    }
    // Active first, then those still to start, then ended ones; the API's order within each.
    const rank = { active: 0, pending: 1, expired: 2 };
    const byState = (a, b) => rank[a.state] - rank[b.state];
    const silences = this.silences.filter((s) => s.kind === "silence").sort(byState);
    const windows = this.silences.filter((s) => s.kind === "maintenance").sort(byState);
    fill(this.listed,
      h("section", { class: "silence-group", "aria-labelledby": "silences-api-title" },
        h("div", { class: "group-head" },
          h("h3", { id: "silences-api-title", tabindex: "-1" }, "Silences ", h("span", { class: "count" }, `(${silences.length})`)),
          this.expiredToggle),
        silences.length
          ? h("ol", { class: "silence-list" }, silences.map((s) => this.item(s)))
          : h("p", { class: "muted" }, this.showExpired.checked ? "No silences yet." : "No silence is active or pending.")),
      h("section", { class: "silence-group", "aria-labelledby": "silences-windows-title" },
        h("h3", { id: "silences-windows-title" }, "Maintenance windows ", h("span", { class: "count" }, `(${windows.length})`)),
        h("p", { class: "muted small" }, "Recurring windows come from the settings ([[silences.maintenance]]); ",
          "they are changed there, not expired here. Times shown are the current or next opening."),
        windows.length
          ? h("ol", { class: "silence-list" }, windows.map((s) => this.item(s)))
          : h("p", { class: "muted" }, "No maintenance window is configured.")));
  }

  item(silence) {
    const maintenance = silence.kind === "maintenance";
    const title = maintenance ? silence.window : `Silence ${shortId(silence.id)}`;
    const swallowed = silence.swallowed === 1 ? "1 alert swallowed" : `${silence.swallowed} alerts swallowed`;
    const expire = !maintenance && silence.state !== "expired" && this.mayRespond
      ? h("button", { type: "button", class: "secondary small-button",
        "aria-label": `Expire silence ${silence.matchers.map(matcherText).join(", ")}`,
        onclick: (event) => this.expire(event.currentTarget, silence) }, "Expire")
      : null;
    return h("li", { class: `silence state-${silence.state}`,
      dataset: { silenceId: silence.id, state: silence.state, kind: silence.kind } },
      h("div", { class: "silence-head" },
        h("span", { class: `badge silence-${silence.state}`, dataset: { silenceState: silence.state } }, label(silence.state)),
        h("h4", { class: "silence-title" }, title),
        maintenance ? h("span", { class: "badge kind-maintenance" }, "Maintenance window") : null,
        expire),
      matchersOf(silence),
      h("dl", { class: "facts" },
        h("dt", null, maintenance ? "Opens" : "Starts"), h("dd", null, when(silence.starts_at)),
        h("dt", null, maintenance ? "Closes" : "Ends"), h("dd", null, when(silence.ends_at)),
        silence.comment ? [h("dt", null, "Comment"), h("dd", { class: "silence-comment" }, silence.comment)] : null,
        maintenance ? null : [h("dt", null, "Created by"),
          h("dd", null, silence.created_by ?? "—", silence.created_at ? [" · ", when(silence.created_at)] : null)],
        silence.expired_at ? [h("dt", null, "Expired"),
          h("dd", null, when(silence.expired_at), silence.expired_by ? ` by ${silence.expired_by}` : null)] : null,
        h("dt", null, "Swallowed"),
        h("dd", null, h("strong", { dataset: { swallowed: silence.swallowed } }, swallowed),
          silence.last_swallowed_at ? [", last ", when(silence.last_swallowed_at)] : null)),
      silence.recent.length ? this.recent(silence) : null);
  }

  recent(silence) {
    const shown = silence.recent.slice(0, RECENT_SHOWN);
    return h("div", { class: "swallowed" },
      h("p", { class: "swallowed-title" }, shown.length < silence.swallowed ? `Latest ${shown.length} of ${silence.swallowed}` : "Swallowed alerts"),
      h("ul", { class: "swallowed-list" }, shown.map((alert) => h("li", { dataset: { fingerprint: alert.fingerprint } },
        when(alert.silenced_at), " ", h("strong", null, alert.alertname ?? "(no alertname)"), " ",
        h("span", { class: "muted small" }, Object.entries(alert.labels)
          .filter(([key]) => key !== "alertname").map(([key, value]) => `${key}=${value}`).join(" "))))));
  }

  async expire(button, silence) {
    this.problem.textContent = this.message.textContent = "";
    if (this.form) this.form.message.textContent = ""; // "created" no longer tells the latest news
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const { status } = await this.api.del(`/v1/silences/${silence.id}`);
      this.message.textContent = status === 202
        ? `Expiring silence ${shortId(silence.id)}: sent; the list updates when it is done.`
        : `Silence ${shortId(silence.id)} expired: matching alerts open incidents again.`;
      await this.sync();
      // The button left with its silence: keep the keyboard in the list rather than lose it to the page.
      if (!button.isConnected) this.listed.querySelector("#silences-api-title")?.focus();
    } catch (error) {
      this.problem.textContent = `Silence ${shortId(silence.id)} was not expired: ${error.describe ? error.describe() : error}`;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}
