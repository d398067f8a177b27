// Every incident the page has seen, as of the highest version seen.
//
// Incidents arrive from two places, list pages and stream messages, in no fixed order
// relative to each other; keeping the higher version makes the order irrelevant.

/** The change-feed summary row and the API's incident differ only in how durations sit. */
export function normalize(incident) {
  if (incident.durations) return incident;
  const { time_to_acknowledge_s, time_to_mitigate_s, time_to_resolve_s, ...rest } = incident;
  return { ...rest, durations: { time_to_acknowledge_s, time_to_mitigate_s, time_to_resolve_s } };
}

export class IncidentStore {
  constructor() {
    this.byId = new Map();
  }

  /** Keep `incident` unless a later version is already known; true when kept. */
  put(incident) {
    const known = this.byId.get(incident.id);
    if (known && known.version > incident.version) return false;
    this.byId.set(incident.id, normalize(incident));
    return true;
  }

  get(id) {
    return this.byId.get(id);
  }

  clear() {
    this.byId.clear();
  }

  values() {
    return this.byId.values();
  }
}

/** Newest first by (opened_at, id), the order of GET /v1/incidents. */
export function newestFirst(a, b) {
  const at = Date.parse(b.opened_at) - Date.parse(a.opened_at);
  if (at) return at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
