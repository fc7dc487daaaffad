// Small pieces the Models page's parts share: model ids in paths, waits that end
// when the person leaves the page, and the badges for a model's residency.

import { h } from "../dom.js";

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** A model id as a path: its '/' stay separators (the routes are path-style). */
export function modelPath(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

const RUNTIME_KIND = { loaded: "ok", busy: "warn", loading: "warn", unloaded: "" };

/** The residency badge of a local model; provider models have none. */
export function runtimeBadge(status) {
  if (!status) return h("span", { class: "muted", text: "—" });
  return h("span", { class: `badge runtime ${RUNTIME_KIND[status] ?? ""}`.trim(), text: status });
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function isAborted(signal, err) {
  return signal.aborted || err?.name === "AbortError";
}
