// Small DOM helpers shared by every page: element building, labelled fields,
// messages for screen readers, dialogs and formatting.

let counter = 0;
export const uid = (prefix = "id") => `${prefix}-${++counter}`;

/** h("button", {class: "primary", onclick: fn, "aria-label": "…"}, "text", child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A visible label tied to its control; `hint` becomes the control's description. */
export function field(label, control, hint) {
  control.id ||= uid("f");
  const wrap = h("div", { class: "field" }, h("label", { for: control.id, text: label }), control);
  if (hint) {
    const note = h("small", { id: uid("hint"), class: "hint", text: hint });
    control.setAttribute("aria-describedby", note.id);
    wrap.append(note);
  }
  return wrap;
}

export function button(text, onclick, { kind = "secondary", type = "button", label } = {}) {
  return h("button", { class: `btn ${kind}`, type, onclick, "aria-label": label }, text);
}

/** A polite live message (or an assertive one for errors). */
export function toast(message, kind = "info") {
  const region = document.getElementById(kind === "error" ? "alerts" : "status");
  const note = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  region.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** An inline error box for a form: role=alert so it is announced. `show(err)` shows
 * the message and, for a validation error (API.md §2 `details`), one line per field,
 * named by `labels` (the last part of `loc` → the form's visible label). */
export function errorBox(labels = {}) {
  const box = h("div", { class: "form-error", role: "alert", hidden: true });
  box.show = (err) => {
    box.textContent = err ? err.message || String(err) : "";
    box.hidden = !err;
    const details = Array.isArray(err?.details) ? err.details : [];
    const lines = details
      .filter((d) => d && typeof d === "object" && d.msg)
      .map((d) => {
        const name = Array.isArray(d.loc) ? String(d.loc[d.loc.length - 1]) : "";
        return h("li", { text: `${labels[name] || name || "Request"}: ${d.msg}` });
      });
    if (lines.length) box.append(h("ul", {}, lines));
  };
  return box;
}

/** A wide table's scroll box: wide tables scroll inside it at phone width, never the
 * page; it takes focus and has a name, so a keyboard can scroll it too. */
export function scrollBox(grid, label) {
  const name = label || `${grid.querySelector("caption")?.textContent || "Wide"} table`;
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": name }, grid);
}

/** Resolves after `ms`, or at once when `signal` aborts (the page was left). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** A modal <dialog> asking to confirm; resolves true or false. */
export function confirmDialog(message, { confirm = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": message });
    let settled = false;
    const done = (value) => {
      if (settled) return;
      settled = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h("p", { text: message }),
      h(
        "div",
        { class: "actions" },
        button("Cancel", () => done(false)),
        button(confirm, () => done(true), { kind: danger ? "danger" : "primary" }),
      ),
    );
    // Escape: the same as Cancel (the dialog leaves the page too).
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDate(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatCost(usd) {
  if (usd === null || usd === undefined) return "—";
  return "$" + Number(usd).toFixed(usd !== 0 && Math.abs(usd) < 0.01 ? 4 : 2);
}

/** A table with a caption (its accessible name) and header cells. */
export function table(caption, headers, rows) {
  return h(
    "table",
    { class: "data" },
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col", text })))),
    h("tbody", {}, rows),
  );
}
