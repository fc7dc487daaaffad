// How one message of a conversation looks: the person's text as plain text, an
// answer as sanitized markdown with its reasoning, tool calls, images and 3D models,
// and a footer saying what it cost. AnswerView also takes a streamed answer piece by
// piece.

import { formatCost, h } from "../dom.js";
import { renderMarkdown } from "./markdown.js";

const MESH_VIEWABLE = new Set(["model/gltf-binary", "model/gltf+json"]);
const MESH_EXTENSIONS = {
  "model/gltf-binary": "glb",
  "model/gltf+json": "gltf",
  "model/obj": "obj",
  "model/ply": "ply",
  "model/stl": "stl",
};
let viewerLoaded = null;

/** <model-viewer> is large: its module loads the first time a 3D answer is shown. */
function loadViewer() {
  viewerLoaded ||= import("/ui/static/vendor/model-viewer.min.js");
  return viewerLoaded;
}

export function userView(text) {
  return h(
    "article",
    { class: "msg user", dataset: { role: "user" }, "aria-label": "You" },
    h("p", { class: "msg-who", text: "You" }),
    h("div", { class: "msg-text plain", text }),
  );
}

export function toolResultView(message) {
  return h(
    "article",
    { class: "msg tool", dataset: { role: "tool" }, "aria-label": "Tool result" },
    h("p", { class: "msg-who", text: "Tool result" }),
    h("pre", { class: "msg-text", tabindex: "0", text: message.content }),
  );
}

/** An answer: from history (`fill`) or while it streams (`appendText`, …). */
export class AnswerView {
  constructor(model) {
    this.text = "";
    this.reasoningText = "";
    this.calls = [];
    this.pending = false;
    this.who = h("p", { class: "msg-who" });
    this.body = h("div", { class: "msg-text markdown" });
    this.reasoningBody = h("div", { class: "reasoning-text" });
    this.reasoning = h(
      "details",
      { class: "reasoning", hidden: true },
      h("summary", { text: "Reasoning" }),
      this.reasoningBody,
    );
    this.toolList = h("div", { class: "tool-calls", hidden: true });
    this.media = h("div", { class: "media", hidden: true });
    this.note = h("p", { class: "msg-note", hidden: true });
    this.footer = h("p", { class: "msg-footer muted", hidden: true });
    this.el = h(
      "article",
      { class: "msg assistant", dataset: { role: "assistant" }, "aria-label": "Answer" },
      this.who,
      this.reasoning,
      this.body,
      this.toolList,
      this.media,
      this.note,
      this.footer,
    );
    this.setModel(model);
  }

  setModel(model) {
    this.who.textContent = model ? `Answer · ${model}` : "Answer";
    if (model) this.el.dataset.model = model;
  }

  fill(message) {
    this.setModel(message.model);
    this.text = message.content || "";
    this.reasoningText = message.reasoning || "";
    this.calls = (message.tool_calls || []).map((c) => ({ name: c.function.name, arguments: c.function.arguments }));
    this.render();
    this.showMedia(message.artifacts || [], [], null);
    return this;
  }

  appendText(piece) {
    this.text += piece;
    this.schedule();
  }

  appendReasoning(piece) {
    this.reasoningText += piece;
    this.schedule();
  }

  /** OpenAI's tool-call fragments: name in the first, arguments in pieces. */
  appendToolCall(fragment) {
    const index = fragment.index ?? 0;
    this.calls[index] ||= { name: "", arguments: "" };
    const call = this.calls[index];
    if (fragment.function?.name) call.name += fragment.function.name;
    if (fragment.function?.arguments) call.arguments += fragment.function.arguments;
    this.schedule();
  }

  /** Re-render at most once a frame: a fast stream does not re-parse per token. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    renderMarkdown(this.body, this.text);
    this.reasoning.hidden = !this.reasoningText;
    this.reasoningBody.textContent = this.reasoningText;
    this.toolList.hidden = this.calls.length === 0;
    this.toolList.replaceChildren(
      ...this.calls.map((c) =>
        h(
          "div",
          { class: "tool-call" },
          h("p", {}, "Calls ", h("code", { text: c.name || "…" })),
          h("pre", { tabindex: "0", text: c.arguments }),
        ),
      ),
    );
  }

  showMedia(artifacts, images, mesh) {
    const items = [];
    for (const a of artifacts) {
      if (a.type === "image" || a.type === "preview") items.push(imageOf(a.url, a.type));
      else if (a.type === "mesh") items.push(meshOf(a.url, a.content_type));
    }
    if (!artifacts.length) {
      for (const b64 of images || []) items.push(imageOf(`data:image/png;base64,${b64}`, "image"));
      if (mesh) items.push(meshOf(`data:model/gltf-binary;base64,${mesh}`, "model/gltf-binary"));
    }
    this.media.hidden = items.length === 0;
    this.media.replaceChildren(...items);
  }

  showFooter(usage, finishReason) {
    const parts = [];
    if (usage) {
      parts.push(`${usage.prompt_tokens ?? 0} in · ${usage.completion_tokens ?? 0} out tokens`);
      parts.push(formatCost(usage.cost_usd ?? 0));
    }
    if (finishReason && finishReason !== "stop") parts.push(`finish: ${finishReason}`);
    this.footer.textContent = parts.join(" · ");
    this.footer.hidden = parts.length === 0;
  }

  showNote(text, kind = "") {
    this.note.className = `msg-note ${kind}`.trim();
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}

function imageOf(url, type) {
  const alt = type === "preview" ? "Preview of the generated 3D model" : "Generated image";
  return h("a", { href: url, target: "_blank", rel: "noopener", class: "media-item" }, h("img", { src: url, alt, loading: "lazy" }));
}

function meshOf(url, contentType) {
  const ext = MESH_EXTENSIONS[contentType];
  const name = ext ? `model.${ext}` : "model";
  const link = h("a", { href: url, download: name, class: "media-link" }, ext ? `Download the 3D model (.${ext})` : "Download the 3D model");
  if (!MESH_VIEWABLE.has(contentType)) return h("div", { class: "media-item" }, link);
  loadViewer();
  const viewer = h("model-viewer", {
    src: url,
    alt: "Generated 3D model",
    "camera-controls": true,
    "touch-action": "pan-y",
    class: "mesh-viewer",
  });
  return h("div", { class: "media-item" }, viewer, link);
}
