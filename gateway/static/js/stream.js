// The live change stream (GET /v1/stream, SPEC §8) and the page's connection state.
//
// While a connection drops and comes back, the browser's EventSource reconnects by
// itself and sends Last-Event-ID. When it gives up (the gateway answered with an error
// while restarting, say), we open a new one with `last_event_id=` from the id we track,
// so nothing in between is missed. Either way a change is applied at most once:
// anything at or below the last id seen is a repeat of a resume and is skipped.

export const EVENT_TYPES = [
  "IncidentOpened", "IncidentAcknowledged", "StatusChanged", "SeverityChanged", "NoteAdded",
  "AlertAttached", "AlertResolved", "CorrelationStarted", "CorrelationSourceStarted",
  "CorrelationSourceCompleted", "FindingRecorded", "CorrelationCompleted", "ImpactAssessed",
  "RootCauseConfirmed", "NotificationSent", "NotificationFailed", "Escalated",
];

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

/**
 * States: "connecting" (first connection), "live", "reconnecting" (lost, trying again),
 * "resyncing" (refetching after `event: reset`), "offline" (stopped).
 */
export class LiveStream {
  /**
   * @param token      access token, sent as `access_token=` (EventSource cannot set headers)
   * @param onChange   called with each change message (SPEC §8 `data`), in change_id order
   * @param onReset    async; refetch everything shown; called after `event: reset`
   * @param onState    called with the state name whenever it changes
   * @param probe      async; before a manual reconnect: throws when the token is refused
   */
  constructor({ token, onChange, onReset, onState, probe }) {
    Object.assign(this, { token, onChange, onReset, onState, probe });
    this.lastId = null;
    this.source = null;
    this.open = false;
    this.everOpen = false;
    this.resyncing = 0;
    this.retryMs = RETRY_FIRST_MS;
    this.timer = null;
    this.stopped = true;
    this.state = "offline";
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.close();
    this.setState("offline");
  }

  connect() {
    this.close();
    const params = new URLSearchParams({ access_token: this.token });
    if (this.lastId !== null) params.set("last_event_id", String(this.lastId));
    const source = new EventSource(`/v1/stream?${params}`);
    this.source = source;
    source.onopen = () => {
      if (source !== this.source) return;
      this.open = this.everOpen = true;
      this.retryMs = RETRY_FIRST_MS;
      this.refreshState();
    };
    source.onerror = () => {
      if (source !== this.source) return;
      this.open = false;
      if (source.readyState === EventSource.CLOSED) this.retryLater();
      this.refreshState();
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, (event) => this.receive(source, event));
    source.addEventListener("reset", (event) => this.reset(source, event));
    this.refreshState();
  }

  close() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    this.open = false;
  }

  receive(source, event) {
    if (source !== this.source) return;
    const id = Number(event.lastEventId);
    if (!Number.isSafeInteger(id)) return;
    if (this.lastId !== null && id <= this.lastId) return;
    this.lastId = id;
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return; // not ours to show; the next message carries the incident as it is now
    }
    this.onChange(change);
  }

  async reset(source, event) {
    if (source !== this.source) return;
    let info = {};
    try {
      info = JSON.parse(event.data);
    } catch {
      // follow from the newest position then
    }
    // Follow from the position the gateway named (everything after it will come),
    // then refetch what the page shows, which is at least that position.
    this.lastId = Number.isSafeInteger(info.newest_change_id) ? info.newest_change_id : null;
    this.resyncing += 1;
    this.connect();
    try {
      await this.onReset();
    } finally {
      this.resyncing -= 1;
      this.refreshState();
    }
  }

  retryLater() {
    this.close();
    clearTimeout(this.timer);
    const delay = this.retryMs * (0.8 + Math.random() * 0.4);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.timer = setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    if (this.stopped) return;
    try {
      await this.probe();
    } catch (error) {
      if (this.stopped || error.status === 401) return; // signed out by the page
      this.retryLater(); // not reachable yet
      return;
    }
    if (!this.stopped) this.connect();
  }

  refreshState() {
    if (this.stopped) return;
    if (this.resyncing) this.setState("resyncing");
    else if (this.open) this.setState("live");
    else this.setState(this.everOpen ? "reconnecting" : "connecting");
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }
}
