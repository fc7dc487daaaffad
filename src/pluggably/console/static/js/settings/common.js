// What the Settings page's forms share: a submit handler that runs once at a time,
// and the card each section sits in.

import { h } from "../dom.js";

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
