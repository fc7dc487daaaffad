// Admin › Requests: everyone's requests, newest first (GET /v1/requests?user_id=*),
// refreshed every few seconds, with a status filter and "Load more"; and the live
// queue: each loaded local model's requests in flight and waiting
// (GET /v1/models/loaded, every 2 s). Cancel is the owner's (the API answers 404 for
// anyone else's request), so it shows on the admin's own running or queued requests.

import { api } from "../api.js";
import { button, errorBox, field, formatBytes, formatCost, h, scrollBox, table, toast } from "../dom.js";
import { every, heading, holdsFocus, row, userNames } from "./common.js";

const PAGE = 50;
const REFRESH_MS = 5000;
const QUEUE_MS = 2000;
const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const BADGES = { completed: "ok", failed: "bad", cancelled: "warn", running: "", queued: "" };
// Requests come seconds apart: their times show the seconds.
const WHEN = { dateStyle: "medium", timeStyle: "medium" };
const HEADERS = ["Created", "User", "Model", "Status", "Tokens (in / out)", "Cost", "Latency", "Error", "Actions"];

export async function render(ctx, container) {
  const errors = errorBox();
  const status = h("select", {}, h("option", { value: "", text: "Any" }), STATUSES.map((s) => h("option", { value: s, text: s })));
  const requestsTable = table("Requests", HEADERS, []);
  const tbody = requestsTable.tBodies[0];
  const empty = h("p", { class: "muted", hidden: true, text: "No requests." });
  let names = new Map();
  let cursor = null;

  let latest = 0; // a refresh asked before the filter changed must not show after it
  async function load(mode) {
    const asked = ++latest;
    const shown = tbody.rows.length;
    // A refresh reloads as many rows as are shown, so "Load more" pages stay put.
    const limit = mode === "refresh" ? Math.min(200, Math.max(PAGE, shown)) : PAGE;
    const query = new URLSearchParams({ user_id: "*", limit: String(limit) });
    if (status.value) query.set("status", status.value);
    if (mode === "more" && cursor) query.set("cursor", cursor);
    const page = await api(`/v1/requests?${query}`, { signal: ctx.signal });
    if (asked !== latest) return;
    if (mode === "refresh" && holdsFocus(tbody)) return; // never pull a row from under focus
    const rows = page.requests.map((r) => requestRow(r, ctx, names, () => load("refresh")));
    if (mode === "more") tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = tbody.rows.length > 0;
  }

  const guarded = (mode) => async () => {
    errors.show(null);
    try {
      await load(mode);
    } catch (err) {
      if (!ctx.signal.aborted) errors.show(err);
    }
  };
  status.addEventListener("change", guarded("reset"));
  const more = button("Load more requests", guarded("more"));
  const queue = h("div", { class: "live-queue" });
  container.append(
    heading("Requests"),
    h("div", { class: "admin-toolbar" }, field("Status", status)),
    errors,
    scrollBox(requestsTable, "Requests"),
    empty,
    h("div", { class: "actions" }, more),
    h("h3", { text: "Live queue" }),
    queue,
  );
  names = await userNames(ctx.signal);
  every(QUEUE_MS, () => showQueue(queue, ctx.signal), ctx.signal);
  await every(REFRESH_MS, guarded("refresh"), ctx.signal);
}

function requestRow(r, ctx, names, reload) {
  const tokens = r.prompt_tokens === null && r.completion_tokens === null ? "—" : `${r.prompt_tokens ?? 0} / ${r.completion_tokens ?? 0}`;
  const mine = r.user_id === ctx.me.id;
  const cancellable = mine && (r.status === "running" || r.status === "queued");
  const cancel = async () => {
    try {
      const answer = await api(`/v1/requests/${encodeURIComponent(r.request_id)}/cancel`, { method: "POST" });
      toast(answer.cancelled ? "Request cancelled." : `The request had already ${answer.status}.`);
      await reload();
    } catch (err) {
      toast(err.message, "error");
    }
  };
  return row([
    h("time", { datetime: r.created_at, text: new Date(r.created_at).toLocaleString(undefined, WHEN) }),
    names.get(r.user_id) || r.user_id,
    r.model || "—",
    h("span", { class: `badge ${BADGES[r.status] ?? ""}`, text: r.status }),
    tokens,
    formatCost(r.cost_usd),
    r.latency_ms === null ? "—" : `${Math.round(r.latency_ms)} ms`,
    r.error_code || "—",
    cancellable ? button("Cancel", cancel, { kind: "danger", label: `Cancel request ${r.request_id}` }) : "—",
  ], { dataset: { requestId: r.request_id } });
}

async function showQueue(box, signal) {
  const { models } = await api("/v1/models/loaded", { signal });
  if (!models.length) {
    box.replaceChildren(h("p", { class: "muted", text: "No local model is loaded." }));
    return;
  }
  const rows = models.map((m) => row([m.model_id, m.runtime, String(m.in_flight), String(m.queue_depth), formatBytes(m.memory_bytes), m.pinned ? "Yes" : "No"]));
  const stamp = new Date().toLocaleTimeString();
  box.replaceChildren(
    scrollBox(table("Loaded models", ["Model", "Runtime", "In flight", "Queued", "Memory", "Pinned"], rows), "Loaded models"),
    h("p", { class: "muted", text: `Updated ${stamp}.` }),
  );
}
