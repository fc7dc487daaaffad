// Admin › Users › Limits: a dialog editing one account's limits (API.md §9) through
// GET/PUT /v1/users/{id}/limits. An empty field is null: no limit at this level (the
// server default and the account's tokens' own limits still apply).

import { api } from "../api.js";
import { button, errorBox, field, h, toast, uid } from "../dom.js";

const NUMBERS = [
  ["rpm", "Requests per minute", "1", "integer"],
  ["tpm", "Tokens per minute", "1", "integer"],
  ["max_concurrent", "Concurrent requests", "1", "integer"],
  ["budget_usd", "Budget (USD)", "0", "decimal"],
];

/** The controls, filled with `current`, and how to read them back as a limits body. */
function controls(current) {
  const inputs = {};
  for (const [key, , min, mode] of NUMBERS) {
    inputs[key] = h("input", {
      type: "number",
      min,
      step: mode === "integer" ? "1" : "any",
      inputmode: mode === "integer" ? "numeric" : "decimal",
      value: current[key] ?? "",
    });
  }
  inputs.budget_period = h(
    "select",
    {},
    h("option", { value: "", text: "Not set (month)" }),
    ["day", "week", "month"].map((p) => h("option", { value: p, text: p })),
  );
  inputs.budget_period.value = current.budget_period ?? "";
  inputs.models = h("textarea", { rows: "3", value: (current.models ?? []).join("\n") });
  const read = () => {
    const body = {};
    for (const [key, , , mode] of NUMBERS) {
      const text = inputs[key].value.trim();
      body[key] = text === "" ? null : mode === "integer" ? parseInt(text, 10) : Number(text);
    }
    body.budget_period = inputs.budget_period.value || null;
    const patterns = inputs.models.value.split("\n").map((p) => p.trim()).filter(Boolean);
    body.models = patterns.length ? patterns : null;
    return body;
  };
  return { inputs, read };
}

export async function openLimits(user, name) {
  const opener = document.activeElement;
  let current;
  try {
    current = await api(`/v1/users/${encodeURIComponent(user.id)}/limits`);
  } catch (err) {
    toast(err.message, "error");
    return;
  }
  const { inputs, read } = controls(current);
  const titleId = uid("limits-title");
  const errors = errorBox();
  const dialog = h("dialog", { class: "limits-dialog", "aria-labelledby": titleId });
  const close = () => {
    dialog.close();
    dialog.remove();
    opener?.focus?.();
  };
  dialog.addEventListener("close", () => dialog.isConnected && close());

  async function save(event) {
    event.preventDefault();
    errors.show(null);
    try {
      await api(`/v1/users/${encodeURIComponent(user.id)}/limits`, { method: "PUT", body: read() });
    } catch (err) {
      errors.show(err);
      return;
    }
    toast(`Limits saved for ${name}.`);
    close();
  }

  dialog.append(
    h(
      "form",
      { method: "dialog", onsubmit: save },
      h("h2", { id: titleId, text: `Limits for ${name}` }),
      h("p", { class: "muted", text: "Leave a field empty for no limit at this level." }),
      errors,
      h("div", { class: "limits-grid" }, NUMBERS.map(([key, label]) => field(label, inputs[key]))),
      field("Budget period", inputs.budget_period),
      field("Allowed models", inputs.models, "One pattern per line, e.g. local:* or openai:gpt-4o*. Empty: every model."),
      h("div", { class: "actions" }, button("Save limits", null, { kind: "primary", type: "submit" }), button("Cancel", close)),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  inputs.rpm.focus();
}
