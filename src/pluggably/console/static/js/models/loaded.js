// What is loaded now (GET /v1/models/loaded), refreshed every few seconds while the
// page is open. The table is redrawn only when something in it changed, so a screen
// reader is not sent a new table every tick.

import { api } from "../api.js";
import { clear, formatBytes, formatDate, h, scrollBox, sleep, table, uid } from "../dom.js";
import { isAborted } from "./common.js";

const REFRESH_MS = 3000;
const HEADERS = ["Model", "Runtime", "Memory", "Running", "Queued", "Pinned", "Last used"];

export function createLoaded(ctx, onUpdate) {
  const heading = uid("loaded");
  const body = h("div", { class: "loaded-body" }, h("p", { class: "muted", text: "Reading what is loaded…" }));
  const section = h(
    "section",
    { class: "loaded card", "aria-labelledby": heading },
    h("h2", { id: heading, text: "Loaded now" }),
    body,
  );
  let last = null;

  function summary(models) {
    const sum = (key) => models.reduce((total, m) => total + (m[key] || 0), 0);
    if (models.length === 0) return "No model is loaded.";
    const count = models.length === 1 ? "1 model" : `${models.length} models`;
    return (
      `${count} loaded, ${formatBytes(sum("memory_bytes"))} of memory, ` +
      `${sum("in_flight")} running, ${sum("queue_depth")} queued.`
    );
  }

  function draw(models) {
    const rows = models.map((m) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", text: m.model_id }),
        h("td", { text: m.runtime }),
        h("td", { text: formatBytes(m.memory_bytes) }),
        h("td", { text: String(m.in_flight) }),
        h("td", { text: String(m.queue_depth) }),
        h("td", { text: m.pinned ? "yes" : "no" }),
        h("td", { text: formatDate(m.last_used_at) }),
      ),
    );
    clear(body).append(h("p", { class: "loaded-summary", text: summary(models) }));
    if (models.length) body.append(scrollBox(table("Loaded models", HEADERS, rows)));
  }

  async function tick() {
    const askedAt = performance.now();
    const { models } = await api("/v1/models/loaded", { signal: ctx.signal });
    onUpdate(models, askedAt);
    const key = JSON.stringify(models.map((m) => [m.model_id, m.runtime, m.memory_bytes, m.in_flight, m.queue_depth, m.pinned, m.last_used_at]));
    if (key !== last) {
      last = key;
      draw(models);
    }
  }

  async function run() {
    while (!ctx.signal.aborted) {
      try {
        await tick();
      } catch (err) {
        if (isAborted(ctx.signal, err)) return;
        last = null;
        clear(body).append(h("p", { class: "form-error", text: `Could not read the loaded models: ${err.message}` }));
      }
      await sleep(REFRESH_MS, ctx.signal);
    }
  }

  /** Reads the list now (after a load or unload), besides the regular refresh. */
  async function refresh() {
    try {
      await tick();
    } catch {
      /* the regular refresh shows the problem */
    }
  }

  return { section, start: run, refresh };
}
