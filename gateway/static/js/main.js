// The dashboard: sign in with a token, then the incident list and one incident, kept
// current by the change stream.

import { createApi } from "./api.js";
import { h } from "./dom.js";
import { IncidentView } from "./incident.js";
import { IncidentList } from "./list.js";
import { ScorecardView } from "./scorecard.js";
import { claims, clearToken, expired, loadToken, mayRespond, saveToken } from "./session.js";
import { SilencesView } from "./silences.js";
import { IncidentStore } from "./store.js";
import { LiveStream } from "./stream.js";

const $ = (id) => document.getElementById(id);

const CONNECTION_TEXT = {
  offline: "Not connected",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  resyncing: "Resyncing…",
};

// Built once; a sign-in gives them its api. `stream` exists while signed in.
const store = new IncidentStore();
let list = null;
let view = null;
let scorecard = null;
let silences = null;
let stream = null;

// -- messages ------------------------------------------------------------------------------

function report(text) {
  const errors = $("errors");
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss message",
    onclick: () => item.remove() }, "×");
  const item = h("p", { class: "error" }, h("span", null, text), close);
  // The same failure repeated (every refetch while the gateway is away) is said once.
  for (const known of errors.children) if (known.firstChild.textContent === text) return;
  errors.append(item);
  while (errors.children.length > 3) errors.firstChild.remove();
}

function clearReports() {
  $("errors").replaceChildren();
}

function showConnection(state) {
  const el = $("connection");
  el.dataset.state = state;
  $("connection-text").textContent = CONNECTION_TEXT[state] ?? state;
  // Failures to fetch while away no longer apply once the stream is back.
  if (state === "live") {
    for (const item of [...$("errors").children]) {
      if (item.textContent.includes("cannot be reached")) item.remove();
    }
  }
}

// -- signing in and out ----------------------------------------------------------------------

function showSignIn(message = "") {
  $("dashboard").hidden = true;
  $("who").hidden = true;
  $("views").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message;
  showConnection("offline");
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  const message = $("sign-in-message");
  const who = token ? claims(token) : null;
  if (!who) {
    message.textContent = "That is not an access token (a JWT has three parts separated by dots).";
    return;
  }
  if (expired(who)) {
    message.textContent = "That token has expired; mint a new one.";
    return;
  }
  message.textContent = "Checking the token…";
  const api = createApi(token, () => {});
  try {
    await api.get("/v1/incidents", { limit: 1 });
  } catch (error) {
    message.textContent = error.status === 403
      ? `This token cannot read incidents (roles: ${who.roles.join(", ") || "none"}).`
      : `The gateway refused the token: ${error.describe()}`;
    return;
  }
  saveToken(token);
  $("token").value = "";
  start(token, who);
}

function signOut(message = "") {
  if (stream) {
    stream.stop();
    stream = null;
  }
  clearToken();
  clearReports();
  view.show(null);
  scorecard.show(false);
  silences.show(false);
  silences.clear();
  store.clear();
  list.clear();
  showSignIn(message);
}

// -- the signed-in page ------------------------------------------------------------------------

function start(token, who) {
  const api = createApi(token, (error) => {
    // A late answer to a previous session's request must not sign out this one.
    if (list.api === api) signOut(`Signed out: the gateway refused the token (${error.describe()}).`);
  });
  list.api = view.api = scorecard.api = silences.api = api;
  view.mayRespond = silences.mayRespond = mayRespond(who);
  stream = new LiveStream({
    token,
    onState: (state) => {
      const back = state === "live" && $("connection").dataset.state === "reconnecting";
      showConnection(state);
      // Back from an outage: load what could not be loaded while the gateway was away.
      if (back) {
        if (!list.loaded()) list.reload({ again: true });
        if (view.id && !view.incident) view.refresh();
      }
    },
    onChange: (change) => {
      silences.changed(change);
      if (!change.incident) return; // a silence's change: no incident to show
      store.put(change.incident);
      list.changed(store.get(change.incident_id), change.type === "IncidentOpened");
      view.changed(change);
      scorecard.changed(change);
    },
    onReset: () => Promise.all([list.reload({ again: true }), view.refresh(), scorecard.refresh(), silences.refresh()]),
    probe: () => api.get("/v1/incidents", { limit: 1 }),
  });

  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("who").hidden = false;
  $("views").hidden = false;
  $("who-name").textContent = `${who.sub} (${who.roles.join(", ") || "no roles"})`;
  // Stream first: whatever changes while the first page loads is applied on top of it.
  stream.start();
  list.reload({ again: true });
  route(false);
}

// -- what is shown beside the list: #/incidents/<id>, #/scorecard or #/silences ------------------------

const PAGES = { "#/scorecard": "scorecard", "#/silences": "silences" };

function route(byPerson) {
  if (!stream) return;
  const page = PAGES[location.hash] ?? "incidents";
  const match = /^#\/incidents\/([0-9a-f-]{36})$/i.exec(location.hash);
  const id = match ? match[1].toLowerCase() : null;
  $("incident").hidden = page !== "incidents";
  for (const name of ["incidents", "scorecard", "silences"]) {
    const link = $(`view-${name}`);
    if (name === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  list.select(id);
  view.show(id, { focus: byPerson && id !== null });
  scorecard.show(page === "scorecard", { focus: byPerson });
  silences.show(page === "silences", { focus: byPerson });
}

// -- boot ---------------------------------------------------------------------------------------

function boot() {
  list = new IncidentList({ api: null, store, report });
  view = new IncidentView({ api: null, store, mayRespond: false, report });
  scorecard = new ScorecardView({ api: null, report });
  silences = new SilencesView({ api: null, mayRespond: false, report });
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", () => route(true));

  // `warroom up` may hand out a link with the token in the fragment (never sent to a server).
  const fromLink = /^#token=([\w.-]+)$/.exec(location.hash);
  if (fromLink) {
    saveToken(fromLink[1]);
    history.replaceState(null, "", location.pathname);
  }
  const token = loadToken();
  const who = token ? claims(token) : null;
  if (!who) {
    showSignIn();
  } else if (expired(who)) {
    clearToken();
    showSignIn("Your token has expired; paste a new one.");
  } else {
    start(token, who);
  }
}

boot();
