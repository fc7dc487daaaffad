// What the Settings page's forms share: an error box that also lists a validation
// error's fields (API.md §2 `details`), named as the form's labels name them.

import { errorBox, h } from "../dom.js";

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
