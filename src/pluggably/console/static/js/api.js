// The console's one way to reach the server: same-origin fetch with the HttpOnly
// session cookie, and the CSRF token (a readable cookie) echoed in a header on every
// call. Errors come back as ApiError carrying API.md §2's fields.

export const CSRF_COOKIE = "pluggably_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail?.message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = detail?.code || "http_" + status;
    this.details = detail?.details ?? null;
    this.retryAfter = detail?.retry_after ?? null;
    this.requestId = detail?.request_id ?? null;
  }
}

function cookie(name) {
  const prefix = name + "=";
  for (const part of document.cookie.split("; ")) {
    if (part.startsWith(prefix)) return decodeURIComponent(part.slice(prefix.length));
  }
  return "";
}

function request(path, { method = "GET", body, signal, headers = {} } = {}) {
  const all = { Accept: "application/json", ...headers };
  const token = cookie(CSRF_COOKIE);
  if (token) all[CSRF_HEADER] = token;
  let payload;
  if (body !== undefined) {
    all["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch(path, { method, headers: all, body: payload, signal, credentials: "same-origin" });
}

async function failure(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    /* not JSON: keep the status */
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("pluggably:unauthorized"));
  return new ApiError(response.status, typeof detail === "object" ? detail : { message: detail });
}

/** JSON in, JSON out; throws ApiError. `raw: true` returns the Response itself. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await failure(response);
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Server-sent events: POSTs `body` (or GETs without one) and yields each `data:`
 * frame parsed as JSON, until `[DONE]` or the end of the body. The Response is
 * passed to `onOpen` first (its headers carry X-Request-ID). */
export async function* sse(path, { body, signal, method, onOpen } = {}) {
  const response = await request(path, {
    method: method || (body === undefined ? "GET" : "POST"),
    body,
    signal,
    headers: { Accept: "text/event-stream" },
  });
  if (!response.ok) throw await failure(response);
  if (onOpen) onOpen(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (!data) continue; // a comment such as ": keep-alive"
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The console's own session routes (src/pluggably/console/routes.py). */
export const session = {
  bootstrap: () => api("/ui/api/bootstrap"),
  signIn: (username, password) =>
    api("/ui/api/session", { method: "POST", body: { username, password } }),
  signOut: () => api("/ui/api/session", { method: "DELETE" }),
  setup: (body) => api("/ui/api/setup", { method: "POST", body }),
};
