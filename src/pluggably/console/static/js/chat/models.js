// The model picker: every model the person can call that answers a chat turn (text,
// and image and 3D models, whose answers are pictures and meshes), grouped by where
// it runs, each saying whether it is ready.

import { api } from "../api.js";
import { h } from "../dom.js";

const CHAT_MODALITIES = new Set(["text", "image", "3d"]);
const PAGES = 5; // at most 1000 models: a picker longer than that is no use anyway

export async function loadModels(signal) {
  const models = [];
  let cursor = null;
  for (let i = 0; i < PAGES; i++) {
    const query = new URLSearchParams({ limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/v1/models?${query}`, { signal });
    models.push(...page.models);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return models.filter((m) => CHAT_MODALITIES.has(m.modality) && m.availability?.access !== "locked");
}

/** The words after a model's name: its modality and whether it can answer now. */
export function availability(m) {
  const parts = [];
  if (m.modality !== "text") parts.push(m.modality === "3d" ? "3D" : m.modality);
  if (m.status && m.status !== "available") parts.push(m.status);
  else if (m.runtime_status) parts.push(m.runtime_status);
  if (m.queue_depth) parts.push(`${m.queue_depth} waiting`);
  if (m.availability?.access === "unknown") parts.push("access unknown");
  const credits = m.availability?.credits_status?.status;
  if (credits && credits !== "available" && credits !== "unknown") parts.push(credits.replace("_", " "));
  return parts.join(", ");
}

function optionOf(m) {
  const words = availability(m);
  return h("option", {
    value: m.id,
    disabled: m.status !== "available",
    text: words ? `${m.name || m.id} — ${words}` : m.name || m.id,
  });
}

/** Fill `select` with the models, grouped (local first), and pick the first usable
 * of `preferred` (ids), else the default text model. */
export function fillPicker(select, models, preferred) {
  const groups = new Map();
  for (const m of models) {
    const key = m.provider === "local" ? "Local" : m.provider;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(m);
  }
  const names = [...groups.keys()].sort((a, b) => (a === "Local" ? -1 : b === "Local" ? 1 : a.localeCompare(b)));
  select.replaceChildren(...names.map((name) => h("optgroup", { label: name }, groups.get(name).map(optionOf))));
  const usable = models.filter((m) => m.status === "available");
  const fallback = usable.find((m) => m.is_default && m.modality === "text") || usable.find((m) => m.modality === "text") || usable[0];
  // A stored answer names a local model with its provider ("local:<id>").
  const ids = preferred.filter(Boolean).flatMap((id) => [id, id.replace(/^local:/, "")]);
  const chosen = ids.map((id) => usable.find((m) => m.id === id)).find(Boolean) || fallback;
  if (chosen) select.value = chosen.id;
}
