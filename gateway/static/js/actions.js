// What a responder can do from the incident view: acknowledge, change status, add a
// note, start a correlation run, confirm the root cause. Each command answers with the
// incident's new version, or a problem the page explains.

import { h } from "./dom.js";
import { label, shortId } from "./format.js";

// SPEC §3; true where the move needs a reason.
const MOVES = {
  open: { investigating: false, mitigated: false, resolved: true },
  investigating: { mitigated: false, resolved: false },
  mitigated: { investigating: false, resolved: false },
  resolved: { investigating: true },
};

/** "db (latency)", or "db" when no signal was named. */
function causeText({ service, signal }) {
  return signal ? `${service} (${signal})` : service;
}

export function conflictMessage(error) {
  return `Someone changed this incident (now ${error.currentStatus ?? "changed"}, version ${error.currentVersion ?? "?"}). `
    + "Reload to see the change.";
}

/**
 * The action forms for one incident view. `current()` is the incident as shown;
 * `settled(version)` is told a command's resulting version, `stale(version)` a conflict's.
 */
export class Actions {
  constructor({ api, mayRespond, current, settled, stale }) {
    Object.assign(this, { api, mayRespond, current, settled, stale });
    this.status = null;

    this.message = h("p", { class: "action-message", role: "status", "aria-live": "polite" });
    this.problem = h("p", { class: "action-problem", role: "alert" });
    this.ack = h("button", { type: "button", onclick: () => this.acknowledge() }, "Acknowledge");
    this.correlate = h("button", { type: "button", class: "secondary", onclick: () => this.startCorrelation() },
      "Start correlation run");
    this.target = h("select", { id: "status-target", name: "to", onchange: () => this.describeTarget() });
    this.reason = h("input", { id: "status-reason", name: "reason", type: "text", maxlength: 500, autocomplete: "off" });
    this.reasonHint = h("span", { id: "status-reason-hint", class: "hint" });
    this.reason.setAttribute("aria-describedby", "status-reason-hint");
    this.move = h("button", { type: "submit" }, "Change status");
    this.statusForm = h("form", { class: "status-form", "aria-label": "Change status", novalidate: true, onsubmit: (e) => this.changeStatus(e) },
      h("div", { class: "field" }, h("label", { for: "status-target" }, "Move to"), this.target),
      h("div", { class: "field grow" }, h("label", { for: "status-reason" }, "Reason ", this.reasonHint), this.reason),
      this.move);

    this.noteText = h("textarea", { id: "note-text", name: "text", rows: 3, required: true, maxlength: 10000 });
    this.noteButton = h("button", { type: "submit" }, "Add note");
    this.noteForm = h("form", { class: "note-form", novalidate: true, onsubmit: (e) => this.addNote(e) },
      h("label", { for: "note-text" }, "Add a note"), this.noteText, this.noteButton);

    // Confirming a root cause: one click on a hypothesis (`confirmButton`), or this form for
    // a service no hypothesis names. Its messages show beside it, not at the top.
    this.causeMessage = h("p", { class: "action-message", role: "status", "aria-live": "polite" });
    this.causeProblem = h("p", { class: "action-problem", role: "alert" });
    this.causeService = h("input", { id: "cause-service", name: "service", type: "text", maxlength: 200,
      autocomplete: "off", required: true, list: "services" });
    this.causeSignal = h("input", { id: "cause-signal", name: "signal", type: "text", maxlength: 100,
      autocomplete: "off", list: "signals" });
    this.causeNote = h("input", { id: "cause-note", name: "note", type: "text", maxlength: 2000, autocomplete: "off" });
    this.causeButton = h("button", { type: "submit", class: "secondary" }, "Confirm cause");
    this.causeForm = mayRespond
      ? h("form", { class: "cause-form", "aria-label": "Confirm another root cause", novalidate: true,
        onsubmit: (e) => this.confirmOther(e) },
        h("p", { class: "cause-form-title" }, "Not among the hypotheses?"),
        h("div", { class: "field" }, h("label", { for: "cause-service" }, "Service at fault"), this.causeService),
        h("div", { class: "field" },
          h("label", { for: "cause-signal" }, "Signal ", h("span", { class: "hint" }, "(optional)")), this.causeSignal),
        h("div", { class: "field grow" },
          h("label", { for: "cause-note" }, "Note ", h("span", { class: "hint" }, "(optional)")), this.causeNote),
        this.causeButton,
        h("datalist", { id: "signals" },
          ["latency", "errors", "traffic", "saturation", "restarts", "deploys"].map((s) => h("option", { value: s }))),
        this.causeProblem, this.causeMessage)
      : h("p", { class: "muted small" }, "Responders confirm the root cause here.");

    this.element = h("section", { class: "actions", "aria-labelledby": "actions-title" },
      h("h3", { id: "actions-title", class: "visually-hidden" }, "Actions"),
      h("div", { class: "action-row" }, this.ack, this.correlate),
      this.statusForm, this.noteForm, this.problem, this.message,
      mayRespond ? null : h("p", { class: "muted" }, "Your token is read-only (viewer): actions are disabled."));
    if (!mayRespond) {
      for (const control of [this.ack, this.correlate, this.target, this.reason, this.move, this.noteText, this.noteButton]) {
        control.disabled = true;
      }
    }
  }

  /** Bring the controls in line with the incident as now shown. */
  sync(incident) {
    const resolved = incident.status === "resolved";
    if (this.mayRespond) {
      this.ack.disabled = Boolean(incident.acknowledged_at) || resolved;
    }
    this.ack.textContent = incident.acknowledged_at ? "Acknowledged" : "Acknowledge";
    if (incident.status !== this.status) {
      this.status = incident.status;
      const chosen = this.target.value;
      const targets = Object.keys(MOVES[incident.status] || {});
      this.target.replaceChildren(...targets.map((to) => h("option", { value: to }, label(to))));
      if (targets.includes(chosen)) this.target.value = chosen;
      this.describeTarget();
    }
    if (this.mayRespond) this.move.disabled = this.target.disabled = !this.target.options.length;
  }

  describeTarget() {
    const needs = MOVES[this.status]?.[this.target.value];
    this.reason.required = Boolean(needs);
    this.reasonHint.textContent = needs ? "(required for this move)" : "(optional)";
  }

  clearMessages() {
    for (const el of [this.message, this.problem, this.causeMessage, this.causeProblem]) el.textContent = "";
  }

  async run(button, what, send, done = (body) => `${what}: done (version ${body.version}).`,
    { message = this.message, problem = this.problem } = {}) {
    this.clearMessages();
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const { status, body } = await send();
      if (status === 202 && body.command_id && !body.run_id) {
        message.textContent = `${what}: sent; the outcome is not known yet, the page updates when it is.`;
      } else {
        message.textContent = done(body);
        if (body.version) this.settled(body.version);
      }
      return true;
    } catch (error) {
      if (error.code === "version_conflict") {
        problem.textContent = conflictMessage(error);
        this.stale(error.currentVersion);
      } else if (error.code === "invalid_transition") {
        problem.textContent = `${what}: ${error.describe()}`;
        this.stale(error.currentVersion);
      } else {
        problem.textContent = `${what} failed: ${error.describe ? error.describe() : error}`;
      }
      return false;
    } finally {
      button.removeAttribute("aria-busy");
      button.disabled = false;
      this.sync(this.current());
    }
  }

  acknowledge() {
    const incident = this.current();
    return this.run(this.ack, "Acknowledge", () => this.api.post(`/v1/incidents/${incident.id}/acknowledge`));
  }

  startCorrelation() {
    const incident = this.current();
    return this.run(this.correlate, "Correlation run",
      () => this.api.post(`/v1/incidents/${incident.id}/correlation`),
      (body) => `Correlation run ${shortId(body.run_id)} started.`);
  }

  async changeStatus(event) {
    event.preventDefault();
    const incident = this.current();
    const to = this.target.value;
    const reason = this.reason.value.trim();
    if (!to) return;
    if (this.reason.required && !reason) {
      this.clearMessages();
      this.problem.textContent = `Moving from ${incident.status} to ${to} needs a reason.`;
      this.reason.focus();
      return;
    }
    // The version shown is the one the person decided on; if the incident moved since,
    // the decider refuses the command instead of applying it on top.
    const body = { to, expected_version: incident.version };
    if (reason) body.reason = reason;
    const done = await this.run(this.move, `Status → ${to}`,
      () => this.api.post(`/v1/incidents/${incident.id}/status`, body));
    if (done) this.reason.value = "";
  }

  async addNote(event) {
    event.preventDefault();
    const incident = this.current();
    const text = this.noteText.value.trim();
    if (!text) {
      this.clearMessages();
      this.problem.textContent = "A note needs some text.";
      this.noteText.focus();
      return;
    }
    const done = await this.run(this.noteButton, "Note",
      () => this.api.post(`/v1/incidents/${incident.id}/notes`, { text }));
    if (done) this.noteText.value = "";
  }

  /** The one-click confirm of a hypothesis that names a service; null for viewers, and
   *  for the hypothesis already confirmed (confirming it again would change nothing). */
  confirmButton(hypothesis, confirmed) {
    if (!this.mayRespond || confirmed) return null;
    const button = h("button", {
      type: "button", class: "small-button", "aria-label": `Confirm ${causeText(hypothesis)} as the root cause`,
      onclick: () => this.confirm(button, { service: hypothesis.service, signal: hypothesis.signal || undefined }),
    }, "Confirm");
    return button;
  }

  confirm(button, body) {
    const incident = this.current();
    return this.run(button, "Root cause", () => this.api.post(`/v1/incidents/${incident.id}/root-cause`, body),
      (answer) => `Root cause ${causeText(body)} confirmed (version ${answer.version}).`,
      { message: this.causeMessage, problem: this.causeProblem });
  }

  async confirmOther(event) {
    event.preventDefault();
    const service = this.causeService.value.trim();
    if (!service) {
      this.clearMessages();
      this.causeProblem.textContent = "Name the service that caused the incident.";
      this.causeService.focus();
      return;
    }
    const body = { service };
    const signal = this.causeSignal.value.trim();
    const note = this.causeNote.value.trim();
    if (signal) body.signal = signal;
    if (note) body.note = note;
    const done = await this.confirm(this.causeButton, body);
    if (done) this.causeService.value = this.causeSignal.value = this.causeNote.value = "";
  }
}
