// The Chat page: conversations (sessions) on the side, the conversation itself, a model
// picker and the composer. A new conversation is created with the first message and
// the address becomes /ui/chat/<id> without drawing the page again; answers stream in
// (chat/stream.js) and can be stopped, and the last one answered again.

import { api } from "../api.js";
import { button, errorBox, field, h, toast } from "../dom.js";
import { AnswerView, toolResultView, userView } from "../chat/messages.js";
import { fillPicker, loadModels } from "../chat/models.js";
import { Sidebar, titleOf } from "../chat/sidebar.js";
import { Turn } from "../chat/stream.js";

const sessionPath = (id) => `/v1/sessions/${encodeURIComponent(id)}`;

export async function render(ctx) {
  const page = new ChatPage(ctx);
  ctx.main.append(page.el);
  await page.start();
}

class ChatPage {
  constructor(ctx) {
    this.ctx = ctx;
    this.sessionId = ctx.params[0] || null;
    this.models = [];
    this.turn = null;
    this.sidebar = new Sidebar({ currentId: this.sessionId, signal: ctx.signal, onDeleted: (id) => this.deleted(id) });
    this.build();
  }

  build() {
    this.picker = h("select", { name: "model" });
    this.picker.addEventListener("change", () => this.updateButtons());
    this.systemPrompt = h("textarea", { rows: "3", name: "system_prompt", placeholder: "You are a helpful assistant." });
    this.systemPrompt.addEventListener("change", () => this.saveSystemPrompt());
    this.temperature = h("input", { type: "number", min: "0", max: "2", step: "0.1", inputmode: "decimal", name: "temperature" });
    this.maxTokens = h("input", { type: "number", min: "1", step: "1", inputmode: "numeric", name: "max_tokens" });
    this.log = h("div", { class: "chat-log", role: "log", "aria-label": "Conversation" });
    this.empty = h("p", { class: "muted chat-empty", text: "Start a conversation: write a message below." });
    this.earlier = button("Show earlier messages", () => this.loadEarlier());
    this.earlier.hidden = true;
    this.status = h("p", { class: "chat-status", role: "status" });
    this.error = errorBox();
    this.message = h("textarea", { rows: "3", name: "message", required: true });
    this.message.addEventListener("keydown", (e) => this.onKey(e));
    this.send = button("Send", null, { kind: "primary", type: "submit" });
    this.stop = button("Stop", () => this.turn?.stop(), { kind: "danger" });
    this.stop.hidden = true;
    this.regenerate = button("Regenerate", () => this.answerAgain());
    this.regenerate.hidden = true;
    const composer = h(
      "form",
      { class: "composer", onsubmit: (e) => { e.preventDefault(); this.sendMessage(); } },
      field("Message", this.message),
      h("div", { class: "actions" }, this.send, this.stop, this.regenerate),
    );
    const settings = h(
      "details",
      { class: "chat-settings" },
      h("summary", { text: "Conversation settings" }),
      field("System prompt", this.systemPrompt, "Saved with the conversation; sent before every turn."),
      h(
        "div",
        { class: "settings-row" },
        field("Temperature", this.temperature, "0 answers the same way each time. Empty: the model's default."),
        field("Max tokens", this.maxTokens, "Longest answer. Empty: the model's default."),
      ),
    );
    const conversation = h(
      "section",
      { class: "chat-main", "aria-labelledby": "chat-heading" },
      h("div", { class: "chat-head" }, h("h1", { id: "chat-heading", text: "Chat" }), field("Model", this.picker)),
      settings,
      this.error,
      this.earlier,
      this.empty,
      this.log,
      this.status,
      composer,
    );
    this.el = h("div", { class: "chat-layout" }, this.sidebar.toggle, this.sidebar.el, conversation);
  }

  async start() {
    const [models] = await Promise.all([
      loadModels(this.ctx.signal).catch((err) => (this.error.show(err), [])),
      this.sidebar.load().catch((err) => this.error.show(err)),
      this.sessionId ? this.loadSession() : null,
    ]);
    this.models = models;
    // A conversation goes on with the model that answered last, else the person's own.
    const lastModel = [...this.log.querySelectorAll(".msg.assistant")].pop()?.dataset.model;
    fillPicker(this.picker, models, [lastModel, this.ctx.me?.preferred_model]);
    if (!models.length) this.error.show(new Error("No model is available to you yet: ask an administrator, or add a provider key in Settings."));
    this.updateButtons();
  }

  async loadSession(before = null) {
    const query = new URLSearchParams({ limit: "100" });
    if (before) query.set("before", before);
    let chat;
    try {
      chat = await api(`${sessionPath(this.sessionId)}?${query}`, { signal: this.ctx.signal });
    } catch (err) {
      if (err.status !== 404) throw err;
      this.error.show(new Error("This conversation does not exist (it may have been deleted)."));
      this.sessionId = null;
      return;
    }
    if (!before) {
      this.systemPrompt.value = chat.system_prompt || "";
      this.ctx.setTitle(titleOf(chat));
    }
    const views = chat.messages.map(viewOf).filter(Boolean);
    this.log.prepend(...views);
    this.before = chat.next_before;
    this.earlier.hidden = !chat.next_before;
  }

  async loadEarlier() {
    await this.loadSession(this.before).catch((err) => this.error.show(err));
    this.updateButtons();
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.sendMessage();
    }
  }

  selectedModel() {
    return this.models.find((m) => m.id === this.picker.value) || null;
  }

  /** The parameters the settings set, for a text model (others take their own). */
  parameters(model) {
    const params = {};
    if (model?.modality !== "text") return params;
    if (this.temperature.value !== "") params.temperature = Number(this.temperature.value);
    if (this.maxTokens.value !== "") params.max_tokens = Number(this.maxTokens.value);
    return params;
  }

  async sendMessage() {
    const text = this.message.value.trim();
    if (!text || this.turn) return;
    this.error.show(null);
    const model = this.selectedModel();
    try {
      if (!this.sessionId) await this.createSession();
    } catch (err) {
      this.error.show(err);
      return;
    }
    this.log.append(userView(text));
    this.message.value = "";
    const body = { model: model?.id, input: { prompt: text }, parameters: this.parameters(model) };
    await this.answer(`${sessionPath(this.sessionId)}/generate`, body, model, []);
  }

  async createSession() {
    const prompt = this.systemPrompt.value.trim();
    const chat = await api("/v1/sessions", { method: "POST", body: prompt ? { system_prompt: prompt } : {} });
    this.sessionId = chat.id;
    // The page stays as it is: only the address changes, so a reload finds the chat.
    history.replaceState(null, "", `/ui/chat/${encodeURIComponent(chat.id)}`);
    this.sidebar.setCurrent(chat.id);
  }

  async answerAgain() {
    if (this.turn || !this.sessionId) return;
    const views = [...this.log.children];
    const lastUser = views.map((v) => v.dataset.role).lastIndexOf("user");
    const old = views.slice(lastUser + 1);
    const model = this.selectedModel();
    const body = { model: model?.id, mode: "replace", parameters: this.parameters(model) };
    await this.answer(`${sessionPath(this.sessionId)}/regenerate`, body, model, old);
  }

  /** Run one answer; `replacing`: the views a successful regenerate replaces. */
  async answer(path, body, model, replacing) {
    const view = new AnswerView(model?.id);
    for (const old of replacing) old.classList.add("replacing");
    this.log.append(view.el);
    this.empty.hidden = true;
    this.turn = new Turn({ path, body, view, status: (t) => (this.status.textContent = t), signal: this.ctx.signal, streamed: !model || model.modality === "text" });
    this.setStreaming(true);
    view.el.scrollIntoView({ block: "nearest" });
    const turn = await this.turn.run();
    this.turn = null;
    for (const old of replacing) {
      if (!turn.error && turn.finishReason !== "cancelled") old.remove();
      else old.classList.remove("replacing");
    }
    this.setStreaming(false);
    if (!this.ctx.signal.aborted) this.sidebar.load().catch(() => {});
  }

  setStreaming(on) {
    const focused = document.activeElement;
    this.log.setAttribute("aria-busy", String(on));
    this.stop.hidden = !on;
    this.updateButtons();
    // The button pressed goes away (Send is disabled, Regenerate and Stop hidden): the
    // focus moves to Stop while the answer comes, and back to the message after it.
    if (on && (focused === this.send || focused === this.regenerate)) this.stop.focus();
    if (!on && focused === this.stop) this.message.focus();
  }

  updateButtons() {
    const busy = Boolean(this.turn);
    const views = [...this.log.children];
    this.empty.hidden = views.length > 0;
    this.send.disabled = busy || !this.picker.value;
    const last = views.at(-1)?.dataset.role;
    this.regenerate.hidden = busy || !views.some((v) => v.dataset.role === "user") || last === "user";
  }

  async saveSystemPrompt() {
    if (!this.sessionId) return; // used when the conversation is created
    const prompt = this.systemPrompt.value.trim();
    try {
      await api(sessionPath(this.sessionId), { method: "PUT", body: { system_prompt: prompt || null } });
      toast("System prompt saved.");
    } catch (err) {
      this.error.show(err);
    }
  }

  deleted(id) {
    if (id === this.sessionId) this.ctx.navigate("/ui/chat");
  }
}

function viewOf(message) {
  if (message.role === "user") return userView(message.content);
  if (message.role === "assistant") return new AnswerView().fill(message).el;
  if (message.role === "tool") return toolResultView(message);
  return null; // system turns are the conversation's settings, shown there
}
