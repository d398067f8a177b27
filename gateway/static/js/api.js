// The HTTP API as the page uses it: bearer token in, JSON or a problem (RFC 9457) out.

/** A refused or failed call; `code` is the problem's machine code ("network" if unreachable). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status === 0 ? "network" : "error");
    this.problem = problem;
  }

  get currentStatus() { return this.problem.current_status; }
  get currentVersion() { return this.problem.current_version; }

  /** A sentence for a person; field errors are named. */
  describe() {
    if (this.code === "network") return "The gateway cannot be reached.";
    const fields = (this.problem.errors || []).map((e) => `${e.field}: ${e.message}`);
    return fields.length ? `${this.message} (${fields.join("; ")})` : this.message;
  }
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * `api.get(path, params)`, `api.svg(path)`, `api.post(path, body)` and `api.del(path)`, resolving to
 * `{status, body}`.
 * A 401 also calls `onUnauthorized(error)` so the page can ask for a new token.
 */
export function createApi(token, onUnauthorized) {
  async function call(method, path, params, body, accept = "application/json") {
    const headers = { Authorization: `Bearer ${token}`, Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path + query(params), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, { detail: "The gateway cannot be reached." });
    }
    const text = await response.text();
    if (response.ok && accept !== "application/json") return { status: response.status, body: text };
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text.slice(0, 200) };
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data || {});
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return { status: response.status, body: data };
  }
  return {
    token,
    get: (path, params) => call("GET", path, params),
    /** An SVG document the gateway draws, as text. */
    svg: (path) => call("GET", path, undefined, undefined, "image/svg+xml"),
    post: (path, body) => call("POST", path, undefined, body ?? {}),
    del: (path) => call("DELETE", path),
  };
}
