// The "Conversations" list: the person's sessions, newest activity first, each a link
// to its page, with Rename and Delete buttons that name it. At phone width the list
// folds away behind a toggle button.

import { api } from "../api.js";
import { button, confirmDialog, field, h, toast } from "../dom.js";

export const titleOf = (s) => s.title || "New chat";

export class Sidebar {
  constructor({ currentId, onDeleted, signal }) {
    Object.assign(this, { currentId, onDeleted, signal });
    this.list = h("ul", { class: "conversations", id: "chat-conversations-list" });
    this.more = button("Show older", () => this.load(this.cursor), { kind: "secondary" });
    this.more.hidden = true;
    this.toggle = h(
      "button",
      { class: "btn secondary sidebar-toggle", type: "button", "aria-expanded": "false", "aria-controls": "chat-sidebar", onclick: () => this.setOpen(!this.open) },
      "Conversations",
    );
    this.el = h(
      "nav",
      { class: "chat-sidebar", id: "chat-sidebar", "aria-labelledby": "chat-conversations-heading" },
      h("h2", { id: "chat-conversations-heading", text: "Conversations" }),
      h("a", { class: "btn primary new-chat", href: "/ui/chat" }, "New chat"),
      this.list,
      this.more,
    );
    this.open = false;
  }

  setOpen(open) {
    this.open = open;
    this.el.classList.toggle("open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  /** The first page (or the next one after `cursor`). */
  async load(cursor = null) {
    const query = new URLSearchParams({ limit: "50", status: "active" });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/v1/sessions?${query}`, { signal: this.signal });
    if (!cursor) this.list.replaceChildren();
    for (const s of page.sessions) this.list.append(this.item(s));
    this.cursor = page.next_cursor;
    this.more.hidden = !page.next_cursor;
    if (!this.list.children.length) this.list.append(h("li", { class: "muted empty", text: "No conversations yet." }));
  }

  item(s) {
    const name = titleOf(s);
    const link = h("a", { href: `/ui/chat/${encodeURIComponent(s.id)}`, class: "conversation-link", text: name });
    if (s.id === this.currentId) link.setAttribute("aria-current", "page");
    return h(
      "li",
      { dataset: { sessionId: s.id } },
      link,
      h(
        "span",
        { class: "conversation-actions" },
        button("Rename", () => this.rename(s), { label: `Rename ${name}` }),
        button("Delete", () => this.remove(s), { kind: "danger", label: `Delete ${name}` }),
      ),
    );
  }

  setCurrent(id) {
    this.currentId = id;
    for (const link of this.list.querySelectorAll("a")) {
      if (link.closest("li").dataset.sessionId === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  async rename(s) {
    const title = await askTitle(titleOf(s));
    if (title === null) return;
    try {
      await api(`/v1/sessions/${encodeURIComponent(s.id)}`, { method: "PUT", body: { title } });
      toast(`Renamed to ${title}.`);
      await this.load();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async remove(s) {
    const ok = await confirmDialog(`Delete the conversation “${titleOf(s)}”? Its messages are deleted too.`, { confirm: "Delete", danger: true });
    if (!ok) return;
    try {
      await api(`/v1/sessions/${encodeURIComponent(s.id)}?purge=true`, { method: "DELETE" });
      toast(`Deleted ${titleOf(s)}.`);
      await this.load();
      this.onDeleted(s.id);
    } catch (err) {
      toast(err.message, "error");
    }
  }
}

/** A small modal form for a new title; resolves the title, or null when cancelled. */
function askTitle(current) {
  return new Promise((resolve) => {
    const input = h("input", { type: "text", value: current, maxlength: "200", required: true, autocomplete: "off" });
    const dialog = h("dialog", { class: "confirm", "aria-label": "Rename the conversation" });
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    const form = h(
      "form",
      { method: "dialog", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) done(input.value.trim()); } },
      field("Title", input),
      h("div", { class: "actions" }, button("Cancel", () => done(null)), button("Save", null, { kind: "primary", type: "submit" })),
    );
    dialog.append(form);
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(null); });
    document.body.append(dialog);
    dialog.showModal();
    input.select();
  });
}
