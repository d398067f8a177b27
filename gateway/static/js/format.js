// How times, durations and numbers read on the page.

import { h } from "./dom.js";

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

/** A <time> element for an RFC 3339 timestamp (today's only show the clock). */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return h("time", { datetime: iso, title: date.toISOString() }, (today ? clock : dateTime).format(date));
}

/** "850 ms", "42 s", "4 min 12 s", "3 h 05 min", "2 d 4 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function millis(ms) {
  return ms === null || ms === undefined ? "—" : duration(ms / 1000);
}

export function percent(fraction, digits = 0) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(digits)}%`;
}

/** "IncidentAcknowledged" → "Incident acknowledged". */
export function typeLabel(type) {
  const words = type.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function label(word) {
  if (!word) return "";
  const text = String(word).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A small coloured badge for a status, severity or source state; its text says it all. */
export function badge(kind, value) {
  return h("span", { class: `badge ${kind}-${value}`, dataset: { [kind]: value } }, label(value));
}

export function shortId(id) {
  return String(id).slice(0, 8);
}
