// The form a responder creates a silence with (POST /v1/silences, SPEC §15): one or more
// label matchers, how long it lasts, and why. The gateway checks everything again; what
// is checked here is only what saves a round trip, and what the gateway refuses is
// shown with its field errors beside the form.

import { h } from "./dom.js";
import { shortId } from "./format.js";

const OPS = ["=", "!=", "=~", "!~"];
const OP_NAMES = { "=": "equals", "!=": "does not equal", "=~": "matches the regular expression",
  "!~": "does not match the regular expression" };
const LASTS = [["1h", "1 hour", 3600], ["4h", "4 hours", 4 * 3600], ["1d", "1 day", 86400],
  ["1w", "1 week", 7 * 86400], ["at", "until a time…", null]];
const COMMON_LABELS = ["service", "alertname", "severity", "instance", "job", "namespace", "team"];

/** `datetime-local` wants local wall-clock time without a zone. */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:`
    + `${pad(date.getMinutes())}`;
}

export class SilenceForm {
  /** `api()` is the signed-in API; `created(answer)` is told `{id, version}` once a silence exists. */
  constructor({ api, created }) {
    Object.assign(this, { api, created });
    this.rows = [];
    this.serial = 0; // ids of removed rows are never reused, so labels stay unambiguous

    this.matcherList = h("ol", { class: "matcher-rows" });
    this.addButton = h("button", { type: "button", class: "secondary small-button", onclick: () => this.addRow(true) },
      "Add matcher");
    this.lasts = h("select", { id: "silence-lasts", name: "lasts", onchange: () => this.showEndsAt() },
      LASTS.map(([value, text]) => h("option", { value, selected: value === "4h" }, text)));
    this.endsAt = h("input", { id: "silence-ends-at", name: "ends_at", type: "datetime-local" });
    this.endsAtField = h("div", { class: "field", hidden: true },
      h("label", { for: "silence-ends-at" }, "Ends at ", h("span", { class: "hint" }, "(your time)")), this.endsAt);
    this.comment = h("textarea", { id: "silence-comment", name: "comment", rows: 2, maxlength: 20000, required: true,
      placeholder: "Why, and who to ask: e.g. disk migration on db-3, ask #storage" });
    this.submit = h("button", { type: "submit" }, "Create silence");
    this.problem = h("p", { class: "action-problem", role: "alert" });
    this.message = h("p", { class: "action-message", role: "status", "aria-live": "polite" });

    this.element = h("form", { class: "silence-form", "aria-labelledby": "silence-form-title", novalidate: true,
      onsubmit: (event) => this.send(event) },
      h("h3", { id: "silence-form-title" }, "New silence"),
      h("fieldset", { class: "matchers-field" },
        h("legend", null, "Alerts it swallows ", h("span", { class: "hint" }, "(every matcher must hold)")),
        this.matcherList, this.addButton),
      h("div", { class: "silence-when" },
        h("div", { class: "field" }, h("label", { for: "silence-lasts" }, "Lasts"), this.lasts),
        this.endsAtField),
      h("div", { class: "field" }, h("label", { for: "silence-comment" }, "Comment"), this.comment),
      h("div", { class: "form-end" }, this.submit),
      this.problem, this.message,
      h("datalist", { id: "matcher-labels" }, COMMON_LABELS.map((name) => h("option", { value: name }))));
    this.addRow(false);
  }

  addRow(focus) {
    this.serial += 1;
    const n = this.serial;
    const row = {
      label: h("input", { id: `matcher-label-${n}`, type: "text", maxlength: 200, autocomplete: "off",
        spellcheck: "false", list: "matcher-labels", placeholder: "service" }),
      op: h("select", { id: `matcher-op-${n}` },
        OPS.map((op) => h("option", { value: op, title: OP_NAMES[op] }, op))),
      value: h("input", { id: `matcher-value-${n}`, type: "text", maxlength: 1000, autocomplete: "off",
        spellcheck: "false", placeholder: "checkout" }),
    };
    // Each row's labels read "Matcher 2 Value" to a screen reader; sighted people see the columns.
    row.numbers = [0, 1, 2].map(() => h("span", { class: "visually-hidden" }));
    row.remove = h("button", { type: "button", class: "secondary small-button", onclick: () => this.removeRow(row) },
      "Remove");
    row.element = h("li", { class: "matcher-row" },
      h("div", { class: "field" }, h("label", { for: row.label.id }, row.numbers[0], "Label"), row.label),
      h("div", { class: "field op" }, h("label", { for: row.op.id, title: "operator" }, row.numbers[1], "Op"), row.op),
      h("div", { class: "field grow" }, h("label", { for: row.value.id }, row.numbers[2], "Value"), row.value),
      row.remove);
    this.rows.push(row);
    this.matcherList.append(row.element);
    this.numberRows();
    if (focus) row.label.focus();
  }

  removeRow(row) {
    if (this.rows.length === 1) return;
    const at = this.rows.indexOf(row);
    this.rows.splice(at, 1);
    row.element.remove();
    this.numberRows();
    this.rows[Math.min(at, this.rows.length - 1)].label.focus();
  }

  /** Buttons say which row they act on; the only row cannot be removed. */
  numberRows() {
    this.rows.forEach((row, i) => {
      row.remove.setAttribute("aria-label", `Remove matcher ${i + 1}`);
      for (const number of row.numbers) number.textContent = `Matcher ${i + 1} `;
      row.remove.disabled = this.rows.length === 1;
    });
  }

  showEndsAt() {
    const explicit = this.lasts.value === "at";
    this.endsAtField.hidden = !explicit;
    if (explicit && !this.endsAt.value) this.endsAt.value = localInput(new Date(Date.now() + 4 * 3600_000));
  }

  /** The request body, or a sentence saying what is missing (with the control to fix it). */
  body() {
    const matchers = this.rows.map((row) => ({ label: row.label.value.trim(), op: row.op.value, value: row.value.value }));
    const unnamed = matchers.findIndex((m) => !m.label);
    if (unnamed >= 0) return { missing: `Matcher ${unnamed + 1} needs a label name.`, control: this.rows[unnamed].label };
    let ends;
    if (this.lasts.value === "at") {
      ends = new Date(this.endsAt.value);
      if (!this.endsAt.value || Number.isNaN(ends.getTime())) return { missing: "Choose when the silence ends.", control: this.endsAt };
      if (ends.getTime() <= Date.now()) return { missing: "The end time has already passed.", control: this.endsAt };
    } else {
      const seconds = LASTS.find(([value]) => value === this.lasts.value)[2];
      ends = new Date(Date.now() + seconds * 1000);
    }
    const comment = this.comment.value.trim();
    if (!comment) return { missing: "Say why alerts are silenced (the comment is kept with the silence).", control: this.comment };
    return { body: { matchers, ends_at: ends.toISOString(), comment } };
  }

  clearMarks() {
    this.problem.textContent = this.message.textContent = "";
    for (const control of this.element.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  }

  /** Mark the controls a refusal names: `matchers.1.value`, `matchers.0` (its value), `comment`… */
  markRefused(error) {
    for (const { field } of error.problem.errors || []) {
      const matcher = /^(?:body\.)?matchers\.(\d+)(?:\.(label|op|value))?/.exec(field || "");
      const row = matcher && this.rows[Number(matcher[1])];
      const control = row ? row[matcher[2] || "value"]
        : /comment/.test(field) ? this.comment : /ends_at/.test(field) ? (this.lasts.value === "at" ? this.endsAt : this.lasts)
          : null;
      if (control) control.setAttribute("aria-invalid", "true");
    }
  }

  async send(event) {
    event.preventDefault();
    this.clearMarks();
    const { body, missing, control } = this.body();
    if (missing) {
      this.problem.textContent = missing;
      control.setAttribute("aria-invalid", "true");
      control.focus();
      return;
    }
    this.submit.disabled = true;
    this.submit.setAttribute("aria-busy", "true");
    try {
      const { status, body: answer } = await this.api().post("/v1/silences", body);
      this.message.textContent = status === 202
        ? "Silence sent; the outcome is not known yet, the list updates when it is."
        : `Silence ${shortId(answer.id)} created.`;
      this.reset();
      this.created(answer);
    } catch (error) {
      this.problem.textContent = `The silence was not created: ${error.describe ? error.describe() : error}`;
      if (error.problem) this.markRefused(error);
    } finally {
      this.submit.disabled = false;
      this.submit.removeAttribute("aria-busy");
    }
  }

  /** Back to one empty matcher; how long it lasts stays as chosen. */
  reset() {
    for (const row of this.rows.splice(0)) row.element.remove();
    this.addRow(false);
    this.comment.value = "";
  }
}
