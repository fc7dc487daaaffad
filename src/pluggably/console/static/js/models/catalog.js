// The model catalog (GET /v1/models): filters, pages, and for admins the residency
// actions on local models (load, unload, make default). Rows are updated in place so
// that a person's focus stays on the row they are working on.

import { ApiError, api } from "../api.js";
import { button, clear, confirmDialog, errorBox, field, formatBytes, h, scrollBox, sleep, table, toast, uid } from "../dom.js";
import { isAborted, modelPath, runtimeBadge } from "./common.js";

const MODALITIES = ["text", "image", "3d", "embedding"];
const HEADERS = ["Model", "Provider", "Modality", "Status", "Runtime", "Queue", "Size", "Default", "Availability"];
const PAGE_SIZE = 50;
const LOAD_POLL_MS = 700;

export function createCatalog(ctx) {
  const admin = ctx.me.role === "admin";
  // settled: when each model's last action ended, so that a loaded list asked for
  // before then (older news) does not undo what the action showed.
  const state = { cursor: null, q: "", modality: "", generation: 0, rows: new Map(), busy: new Set(), settled: new Map() };
  const hooks = { changed: () => {} };
  const errors = errorBox();
  const grid = table("Models", admin ? [...HEADERS, "Actions"] : HEADERS, []);
  const tbody = grid.tBodies[0];
  const empty = h("p", { class: "muted", hidden: true, text: "No model matches." });
  const more = button("Load more", () => load(false));
  more.hidden = true;
  const heading = uid("catalog");
  const section = h(
    "section",
    { class: "catalog", "aria-labelledby": heading },
    h("h2", { id: heading, text: "Catalog" }),
    filters(),
    errors,
    scrollBox(grid),
    empty,
    h("div", { class: "actions" }, more),
  );

  function filters() {
    let timer = null;
    const q = h("input", { type: "search", name: "q", autocomplete: "off" });
    const modality = h(
      "select",
      { name: "modality" },
      h("option", { value: "", text: "All modalities" }),
      MODALITIES.map((m) => h("option", { value: m, text: m })),
    );
    q.addEventListener("input", () => {
      clearTimeout(timer); // search once the person pauses typing
      timer = setTimeout(() => {
        state.q = q.value.trim();
        load(true);
      }, 300);
    });
    modality.addEventListener("change", () => {
      state.modality = modality.value;
      load(true);
    });
    const form = h(
      "form",
      { class: "catalog-filters", role: "search", "aria-label": "Filter models" },
      field("Search models", q),
      field("Modality", modality),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(timer);
      state.q = q.value.trim();
      load(true);
    });
    return form;
  }

  async function load(reset) {
    const generation = reset ? ++state.generation : state.generation;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.q) params.set("q", state.q);
    if (state.modality) params.set("modality", state.modality);
    if (!reset && state.cursor) params.set("cursor", state.cursor);
    more.disabled = true;
    try {
      const page = await api(`/v1/models?${params}`, { signal: ctx.signal });
      if (generation !== state.generation) return; // a newer search replaced this one
      if (reset) {
        clear(tbody);
        state.rows.clear();
      }
      for (const model of page.models) addRow(model);
      state.cursor = page.next_cursor;
      more.hidden = !page.next_cursor;
      empty.hidden = state.rows.size > 0;
      errors.show(null);
    } catch (err) {
      if (!isAborted(ctx.signal, err)) errors.show(err);
    } finally {
      more.disabled = false;
    }
  }

  function addRow(model) {
    const existing = state.rows.get(model.id);
    if (existing) {
      existing.model = model;
      return fill(model.id);
    }
    const tr = h("tr", { dataset: { modelId: model.id } });
    state.rows.set(model.id, { tr, model });
    fill(model.id);
    tbody.append(tr);
  }

  function fill(id) {
    const row = state.rows.get(id);
    if (!row) return;
    const { tr, model: m } = row;
    const hadFocus = tr.contains(document.activeElement);
    const cell = (text) => h("td", { text: text ?? "—" });
    clear(tr).append(
      h(
        "th",
        { scope: "row" },
        h("span", { class: "model-name", text: m.name || m.id }),
        m.name && m.name !== m.id ? h("span", { class: "model-id muted", text: m.id }) : null,
      ),
      cell(m.provider),
      cell(m.modality),
      h("td", { title: m.status_reason || null, text: m.status }),
      h("td", {}, runtimeBadge(m.runtime_status)),
      cell(String(m.queue_depth ?? 0)),
      cell(formatBytes(m.size_bytes)),
      h("td", {}, m.is_default ? h("span", { class: "badge ok", text: "Default" }) : ""),
      cell(m.availability?.access),
    );
    if (admin) tr.append(h("td", { class: "row-actions" }, actions(m)));
    if (hadFocus) focusRow(id);
  }

  function actions(m) {
    if (m.format === "remote") return h("span", { class: "muted", text: "—" });
    const pending = state.busy.has(m.id);
    const resident = m.runtime_status === "loaded" || m.runtime_status === "busy";
    const wrap = h("div", { class: "actions" });
    if (resident) {
      wrap.append(button("Unload", () => unload(m.id), { label: `Unload ${m.id}` }));
    } else {
      const load = button("Load", () => loadModel(m.id), { label: `Load ${m.id}` });
      load.disabled = m.status !== "available" || m.runtime_status === "loading";
      wrap.append(load);
    }
    if (!m.is_default && m.status === "available") {
      wrap.append(button("Make default", () => makeDefault(m.id), { label: `Make default ${m.id}` }));
    }
    if (pending) for (const b of wrap.querySelectorAll("button")) b.disabled = true;
    return wrap;
  }

  function focusRow(id) {
    state.rows.get(id)?.tr.querySelector("button:not([disabled])")?.focus();
  }

  async function refreshRow(id) {
    try {
      const row = state.rows.get(id);
      if (row) row.model = await api(`/v1/models/${modelPath(id)}`, { signal: ctx.signal });
    } catch (err) {
      if (isAborted(ctx.signal, err)) return;
    }
    fill(id);
  }

  function setRuntime(id, status) {
    const row = state.rows.get(id);
    if (!row || row.model.runtime_status === status) return;
    row.model = { ...row.model, runtime_status: status };
    fill(id);
  }

  /** Runs `work` for a model with its buttons disabled, then shows its fresh state. */
  async function busy(id, work) {
    // The row's buttons are disabled meanwhile, which drops the focus: it comes back
    // to the row's first button afterwards.
    const refocus = state.rows.get(id)?.tr.contains(document.activeElement);
    state.busy.add(id);
    fill(id);
    try {
      await work();
    } catch (err) {
      if (!isAborted(ctx.signal, err)) toast(err.message, "error");
    } finally {
      state.busy.delete(id);
      state.settled.set(id, performance.now());
      if (!ctx.signal.aborted) await refreshRow(id);
      hooks.changed();
      const lost = !document.activeElement || document.activeElement === document.body;
      if (refocus && lost) focusRow(id);
    }
  }

  function loadModel(id) {
    return busy(id, async () => {
      setRuntime(id, "loading");
      const answer = await api(`/v1/models/${modelPath(id)}/load`, {
        method: "POST",
        body: { wait: false },
        signal: ctx.signal,
      });
      if (answer.status !== "loaded") await waitLoaded(id);
      toast(`${id} is loaded.`);
    });
  }

  /** Polls the model's status until it is loaded; a load that falls back to
   * unloaded failed (the server logs why). */
  async function waitLoaded(id) {
    let unloadedSeen = 0;
    while (!ctx.signal.aborted) {
      await sleep(LOAD_POLL_MS, ctx.signal);
      const status = await api(`/v1/models/${modelPath(id)}/status`, { signal: ctx.signal });
      if (status.runtime_status === "loaded" || status.runtime_status === "busy") return;
      unloadedSeen = status.runtime_status === "unloaded" ? unloadedSeen + 1 : 0;
      if (unloadedSeen >= 3) throw new Error(`${id} could not be loaded; the server's log says why.`);
    }
  }

  function unload(id) {
    return busy(id, async () => {
      const path = `/v1/models/${modelPath(id)}/unload`;
      try {
        await api(path, { method: "POST", signal: ctx.signal });
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 409) throw err;
        const force = await confirmDialog(
          `${err.message} Unload it anyway? It unloads once the requests it is serving finish.`,
          { confirm: "Force unload", danger: true },
        );
        if (!force) return;
        await api(`${path}?force=true`, { method: "POST", signal: ctx.signal });
      }
      toast(`${id} is unloaded.`);
    });
  }

  async function makeDefault(id) {
    await busy(id, async () => {
      const model = await api(`/v1/models/${modelPath(id)}/default`, { method: "POST", signal: ctx.signal });
      toast(`${id} is now the default ${model.modality} model.`);
    });
    if (!ctx.signal.aborted) await load(true); // the previous default's marker moves too
  }

  /** The loaded list (polled by the page) keeps the runtime badges current. */
  function syncLoaded(loaded, askedAt) {
    const byId = new Map(loaded.map((m) => [m.model_id, m]));
    for (const [id, row] of state.rows) {
      const m = row.model;
      if (m.format === "remote" || state.busy.has(id) || !m.runtime_status) continue;
      if ((state.settled.get(id) ?? -1) > askedAt) continue;
      const entry = byId.get(id);
      let status = m.runtime_status;
      if (entry) status = entry.in_flight > 0 ? "busy" : "loaded";
      else if (status === "loaded" || status === "busy") status = "unloaded";
      const queue = entry ? entry.queue_depth : m.queue_depth;
      if (status !== m.runtime_status || queue !== m.queue_depth) {
        row.model = { ...m, runtime_status: status, queue_depth: queue };
        fill(id);
      }
    }
  }

  /** `onChange` runs after each load, unload or default change. */
  const onChange = (fn) => (hooks.changed = fn);
  return { section, reload: () => load(true), syncLoaded, onChange };
}
