// Pictures the gateway draws as SVG (a finding's chart, the incident's service graph),
// fetched with the token and put inline, so they scale with the page and their parts can
// be read and tested like the rest of it. The gateway's renderer is the only one: the
// postmortem writes the same files.

import { h } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";
// What the renderer draws with; anything else (script, foreignObject, links) is dropped.
const ELEMENTS = new Set(["svg", "g", "path", "rect", "line", "circle", "text", "title", "desc"]);

/** Parse `text` as SVG and keep only drawing: no script, no handler, no link. */
function sanitized(text) {
  const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = parsed.documentElement;
  if (root.namespaceURI !== SVG_NS || root.localName !== "svg") return null;
  for (const el of [...root.querySelectorAll("*")]) {
    if (el.namespaceURI !== SVG_NS || !ELEMENTS.has(el.localName)) el.remove();
  }
  for (const el of [root, ...root.querySelectorAll("*")]) {
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name.endsWith("href") || name === "style") el.removeAttribute(attr.name);
    }
  }
  return document.importNode(root, true);
}

export class Pictures {
  /** `api()` is the signed-in API; `report(message)` tells the person when a picture cannot be had. */
  constructor(api, report) {
    this.api = api;
    this.report = report;
    this.drawn = new Map(); // key → parsed <svg>, or null when it could not be drawn
    this.loading = new Map(); // key → promise
  }

  /** Forget every picture (another incident is shown). */
  clear() {
    this.drawn.clear();
    this.loading.clear();
  }

  /**
   * An element holding the SVG at `path`, now when it is at hand, else once fetched.
   * `key` names what it shows: a new key fetches again (a run gained a finding, a cause
   * was confirmed), the same key reuses what was fetched.
   */
  slot(path, key, { label, kind }) {
    const holder = h("div", { class: `picture picture-${kind}`, dataset: { picture: kind }, "aria-busy": "true" },
      h("p", { class: "muted small" }, `Drawing ${label}…`));
    const put = (svg) => {
      holder.removeAttribute("aria-busy");
      if (svg) holder.replaceChildren(svg.cloneNode(true));
      else holder.replaceChildren(h("p", { class: "muted small" }, `The ${label} could not be drawn.`));
    };
    if (this.drawn.has(key)) {
      put(this.drawn.get(key));
      return holder;
    }
    if (!this.loading.has(key)) {
      this.loading.set(key, this.api().svg(path).then(
        ({ body }) => sanitized(body),
        (error) => {
          if (error.status !== 401) this.report(`Could not draw the ${label}: ${error.describe ? error.describe() : error}`);
          return null;
        }).then((svg) => {
        this.drawn.set(key, svg);
        this.loading.delete(key);
        return svg;
      }));
    }
    this.loading.get(key).then(put);
    return holder;
  }
}
