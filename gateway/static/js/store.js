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
  const at = compareInstants(b.opened_at, a.opened_at);
  if (at) return at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Order two RFC 3339 timestamps to the microsecond, as PostgreSQL does (Date keeps ms). */
function compareInstants(x, y) {
  const ms = Date.parse(x) - Date.parse(y);
  return ms || micros(x) - micros(y);
}

function micros(iso) {
  const fraction = /\.(\d+)/.exec(iso ?? "");
  return fraction ? Number(fraction[1].padEnd(6, "0").slice(3, 6)) : 0;
}
