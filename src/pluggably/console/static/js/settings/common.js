// What the Settings page's forms share: an error box that also lists a validation
// error's fields (API.md §2 `details`), named as the form's labels name them.

import { errorBox, h } from "../dom.js";

/** errorBox() whose show(err) adds one line per field of a 422's details;
 * `labels` maps a field name (the last part of `loc`) to its visible label. */
export function problemBox(labels = {}) {
  const box = errorBox();
  const plain = box.show;
  box.show = (err) => {
    plain(err);
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

/** A form that runs `submit` once at a time, its submit button disabled meanwhile. */
export function onSubmit(form, submit) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll('button[type="submit"]');
    for (const b of buttons) b.disabled = true;
    try {
      await submit();
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  });
}

export function section(title, ...children) {
  const id = `settings-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "card settings-section", "aria-labelledby": id }, h("h2", { id, text: title }), ...children);
}

/** A wide table's scroll box: focusable and named (its caption), so that a keyboard
 * can scroll it at phone width. */
export function scrollBox(grid) {
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `${grid.caption?.textContent || "Wide"} table` }, grid);
}
