// The incident list: filters, pages by cursor, and incidents appearing as they happen.
//
// What is shown is every known incident that matches the filters and is no older than
// the last page loaded (older ones come with "Load more"), so an incident from the
// stream and one from a page land in the same place.

import { fill, h, perFrame } from "./dom.js";
import { badge, when } from "./format.js";
import { newestFirst } from "./store.js";

const PAGE = 50;
const UNRESOLVED = ["open", "investigating", "mitigated"];

export class IncidentList {
  constructor({ api, store, report }) {
    Object.assign(this, { api, store, report });
    this.form = document.getElementById("filters");
    this.list = document.getElementById("incident-list");
    this.summary = document.getElementById("list-summary");
    this.more = document.getElementById("load-more");
    this.services = document.getElementById("services");
    this.floor = undefined; // oldest incident of the loaded pages; null: all are loaded
    this.cursor = null;
    this.generation = 0;
    this.selected = null;
    this.fresh = new Set(); // ids that appeared live and are not drawn yet
    this.rows = new Map(); // incident id → its list row
    this.render = perFrame(() => this.draw());
    this.form.addEventListener("change", () => this.reload());
    this.loadedKey = null;
    this.form.addEventListener("submit", (event) => event.preventDefault());
    this.form.elements.service.addEventListener("input", () => this.reloadSoon());
    this.more.addEventListener("click", () => this.loadMore());
  }

  filters() {
    const { status, severity, service } = this.form.elements;
    return {
      status: status.value === "active" ? UNRESOLVED : status.value ? [status.value] : null,
      severity: severity.value || null,
      service: service.value.trim() || null,
    };
  }

  matches(incident, f = this.filters()) {
    return (!f.status || f.status.includes(incident.status))
      && (!f.severity || incident.severity === f.severity)
      && (!f.service || incident.service === f.service);
  }

  reloadSoon() {
    clearTimeout(this.typing);
    this.typing = setTimeout(() => this.reload(), 250);
  }

  /**
   * Load the first page for the current filters; unless `again`, only when they changed
   * (a search field reports its value on input and once more on leaving it).
   * Until the page arrives the rows already drawn stay, so focus stays where it was.
   */
  async reload({ again = false } = {}) {
    const key = JSON.stringify(this.filters());
    if (!again && key === this.loadedKey) return;
    this.loadedKey = key;
    clearTimeout(this.typing);
    this.cursor = null;
    this.render();
    await this.fetchPage(null);
    this.loadServices();
  }

  /** Whether the first page for the current filters was asked for and did not fail. */
  loaded() {
    return this.loadedKey !== null;
  }

  /** Forget what was loaded (signing out). */
  clear() {
    this.generation += 1;
    this.floor = undefined;
    this.cursor = null;
    this.loadedKey = null;
    this.selected = null;
    this.render();
  }

  async loadMore() {
    if (this.cursor) await this.fetchPage(this.cursor);
  }

  async fetchPage(cursor) {
    const generation = ++this.generation;
    const f = this.filters();
    this.list.setAttribute("aria-busy", "true");
    try {
      const { body } = await this.api.get("/v1/incidents", {
        status: f.status, severity: f.severity, service: f.service, limit: PAGE, cursor,
      });
      if (generation !== this.generation) return; // the filters changed meanwhile
      for (const incident of body.items) this.store.put(incident);
      this.cursor = body.next_cursor;
      const last = body.items[body.items.length - 1];
      this.floor = this.cursor && last ? last : null;
      this.render();
    } catch (error) {
      if (generation !== this.generation) return;
      if (!cursor) this.loadedKey = null; // the same filters may be asked for again
      this.report(`Could not load incidents: ${error.describe?.() ?? error}`);
    } finally {
      if (generation === this.generation) this.list.removeAttribute("aria-busy");
    }
  }

  async loadServices() {
    try {
      const { body } = await this.api.get("/v1/services");
      fill(this.services, body.map((service) => h("option", { value: service.name })));
    } catch {
      // only suggestions; the filter works without them
    }
  }

  /** An incident changed on the stream (already in the store). */
  changed(incident, isNew) {
    if (isNew && this.floor !== undefined) this.fresh.add(incident.id);
    this.render();
  }

  select(id) {
    this.selected = id;
    this.render();
  }

  visible() {
    if (this.floor === undefined) return [];
    const f = this.filters();
    const shown = [];
    for (const incident of this.store.values()) {
      if (!this.matches(incident, f)) continue;
      if (this.floor && newestFirst(incident, this.floor) > 0) continue;
      shown.push(incident);
    }
    return shown.sort(newestFirst);
  }

  draw() {
    const shown = this.visible();
    // Rows are kept by incident id and only moved when out of place, so a focused
    // link keeps its focus while incidents arrive around it.
    const keep = new Set(shown.map((incident) => incident.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    shown.forEach((incident, index) => {
      const row = this.row(incident);
      const at = this.list.children[index];
      if (at !== row.li) this.list.insertBefore(row.li, at ?? null);
    });
    this.more.hidden = !this.cursor;
    if (this.floor === undefined) this.summary.textContent = "Loading…";
    else if (!shown.length) this.summary.textContent = "No incidents match these filters.";
    else this.summary.textContent = `${shown.length} incident${shown.length === 1 ? "" : "s"}${this.cursor ? " (more below)" : ""}`;
  }

  row(incident) {
    let row = this.rows.get(incident.id);
    if (!row) {
      const link = h("a", { href: `#/incidents/${incident.id}` });
      const li = h("li", { dataset: { incidentId: incident.id } }, link);
      if (this.fresh.delete(incident.id)) {
        li.classList.add("fresh");
        li.addEventListener("animationend", () => li.classList.remove("fresh"), { once: true });
      }
      row = { li, link, shown: null, selected: null };
      this.rows.set(incident.id, row);
    }
    if (row.shown !== incident) {
      row.shown = incident;
      fill(row.link,
        h("span", { class: "item-title" }, incident.title),
        h("span", { class: "item-meta" },
          badge("severity", incident.severity), " ", badge("status", incident.status),
          h("span", { class: "item-service" }, incident.service),
          when(incident.opened_at)));
    }
    const selected = incident.id === this.selected;
    if (row.selected !== selected) {
      row.selected = selected;
      if (selected) row.link.setAttribute("aria-current", "true");
      else row.link.removeAttribute("aria-current");
    }
    return row;
  }
}
