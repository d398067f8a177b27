// The signed-in token: kept in this browser's storage until sign-out.

const KEY = "warroom.token";

export function loadToken() {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the user signs in on every load
  }
}

export function saveToken(token) {
  try {
    localStorage.setItem(KEY, token);
  } catch {
    // storage disabled or full: the session lasts as long as the page
  }
}

export function clearToken() {
  try {
    localStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
}

/**
 * What a JWT says about its holder (`sub`, `roles`, `exp`), read without verifying it:
 * only for showing who is signed in; the gateway is what checks the signature.
 * Null when `token` is not a JWT.
 */
export function claims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return {
      sub: typeof payload.sub === "string" ? payload.sub : "unknown",
      roles: Array.isArray(payload.roles) ? payload.roles : [],
      exp: typeof payload.exp === "number" ? payload.exp : null,
    };
  } catch {
    return null;
  }
}

export function expired(who) {
  return who.exp !== null && who.exp * 1000 <= Date.now();
}

/** Whether the token's roles allow commands (responder, or admin which includes it). */
export function mayRespond(who) {
  return who.roles.includes("responder") || who.roles.includes("admin");
}
