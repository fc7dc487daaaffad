// Hugging Face hub search and downloads (admin): GET /v1/models/search, then
// POST /v1/models/download, whose job goes to the downloads list.

import { api } from "../api.js";
import { button, clear, errorBox, field, formatBytes, formatDate, h, toast, uid } from "../dom.js";
import { isAborted } from "./common.js";

const LIMIT = 20;
const TAGS_SHOWN = 8;

function facts(result) {
  const parts = [];
  if (result.downloads !== null && result.downloads !== undefined) parts.push(`${result.downloads.toLocaleString()} downloads`);
  if (result.likes !== null && result.likes !== undefined) parts.push(`${result.likes.toLocaleString()} likes`);
  if (result.pipeline_tag) parts.push(result.pipeline_tag);
  if (result.last_modified) parts.push(`updated ${formatDate(result.last_modified)}`);
  return parts.join(" · ");
}

function fileSelect(files) {
  const select = h(
    "select",
    { name: "file" },
    h("option", { value: "", text: "Recommended (the server chooses)" }),
    files.map((f) => h("option", { value: f.filename, text: `${f.filename} (${formatBytes(f.size_bytes)})` })),
  );
  return select;
}

export function createHub(ctx, jobs) {
  const heading = uid("hub");
  const query = h("input", { type: "search", name: "hub-query", autocomplete: "off" });
  const errors = errorBox();
  const results = h("ul", { class: "hub-results", "aria-label": "Search results" });
  const note = h("p", { class: "muted", role: "status" });
  const more = button("More results", () => search(false));
  more.hidden = true;
  const state = { query: "", cursor: null, generation: 0 };

  const form = h(
    "form",
    { class: "hub-search", role: "search", "aria-label": "Hugging Face hub" },
    field("Search the hub", query),
    button("Search", null, { kind: "primary", type: "submit" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = query.value.trim();
    search(true);
  });

  const section = h(
    "section",
    { class: "hub", "aria-labelledby": heading },
    h("h2", { id: heading, text: "Download from Hugging Face" }),
    form,
    errors,
    jobs.section,
    h("h3", { text: "Results" }),
    note,
    results,
    h("div", { class: "actions" }, more),
  );

  async function search(reset) {
    const generation = reset ? ++state.generation : state.generation;
    const params = new URLSearchParams({ limit: String(LIMIT) });
    if (state.query) params.set("query", state.query);
    if (!reset && state.cursor) params.set("cursor", state.cursor);
    note.textContent = "Searching…";
    more.disabled = true;
    try {
      const page = await api(`/v1/models/search?${params}`, { signal: ctx.signal });
      if (generation !== state.generation) return;
      if (reset) clear(results);
      for (const result of page.results) results.append(resultCard(result));
      state.cursor = page.next_cursor;
      more.hidden = !page.next_cursor;
      const count = results.children.length;
      note.textContent = count ? `${count} ${count === 1 ? "repository" : "repositories"} found.` : "Nothing found.";
      errors.show(null);
    } catch (err) {
      if (isAborted(ctx.signal, err)) return;
      note.textContent = "";
      errors.show(err);
    } finally {
      more.disabled = false;
    }
  }

  function resultCard(result) {
    const title = uid("result");
    const select = result.files?.length ? fileSelect(result.files) : null;
    const tags = (result.tags || []).slice(0, TAGS_SHOWN);
    const problems = errorBox();
    return h(
      "li",
      { class: "card hub-result" },
      h("h4", { id: title, class: "result-title", text: result.id }),
      h("p", { class: "muted", text: facts(result) }),
      result.gated ? h("p", { class: "badge warn", text: "Gated: needs a Hugging Face token with access" }) : null,
      tags.length ? h("ul", { class: "tags", "aria-label": `Tags of ${result.id}` }, tags.map((t) => h("li", { class: "badge", text: t }))) : null,
      select ? field("File", select, "GGUF quantizations with their sizes.") : null,
      problems,
      h(
        "div",
        { class: "actions" },
        button("Download", (event) => download(result, select, event.currentTarget, problems), {
          kind: "primary",
          label: `Download ${result.id}`,
        }),
      ),
    );
  }

  async function download(result, select, control, problems) {
    const source = { type: "huggingface", id: result.id };
    if (select?.value) source.filename = select.value;
    control.disabled = true;
    try {
      const response = await api("/v1/models/download", { method: "POST", body: { source }, signal: ctx.signal, raw: true });
      const job = await response.json();
      jobs.add(job);
      toast(response.status === 202 ? `Downloading ${job.model_id}.` : `${job.model_id}: that download already exists (${job.status}).`);
      problems.show(null);
    } catch (err) {
      if (!isAborted(ctx.signal, err)) problems.show(err);
    } finally {
      control.disabled = false;
    }
  }

  return { section };
}
