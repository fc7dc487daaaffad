// Profile (PATCH /v1/users/me), password change, and the limits that bound the
// account (read-only: an administrator sets them).

import { api } from "../api.js";
import { button, errorBox, field, formatCost, h, toast } from "../dom.js";
import { onSubmit, section } from "./common.js";

const MODEL_PAGE = 200;

async function modelOptions(ctx, select, current) {
  // discover=false: the names the person can pick without calling every provider.
  const { models } = await api(`/v1/models?limit=${MODEL_PAGE}&discover=false`, { signal: ctx.signal });
  const ids = new Set(models.map((m) => m.id));
  if (current && !ids.has(current)) select.append(h("option", { value: current, text: current }));
  for (const m of models) {
    const text = m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id;
    select.append(h("option", { value: m.id, text }));
  }
  select.value = current || "";
}

export async function profileSection(ctx) {
  const me = ctx.me;
  const name = h("input", { type: "text", name: "display_name", autocomplete: "nickname", maxlength: "200", value: me.display_name || "" });
  const preferred = h("select", { name: "preferred_model" }, h("option", { value: "", text: "None (the server chooses)" }));
  const problems = errorBox({ display_name: "Display name", preferred_model: "Preferred model" });
  const form = h(
    "form",
    { class: "settings-form", "aria-label": "Profile" },
    h("p", { class: "muted", text: `Signed in as ${me.username || me.email} (${me.role}).` }),
    field("Display name", name),
    field("Preferred model", preferred, "Used when a request names no model."),
    problems,
    h("div", { class: "actions" }, button("Save profile", null, { kind: "primary", type: "submit" })),
  );
  onSubmit(form, async () => {
    try {
      await api("/v1/users/me", {
        method: "PATCH",
        body: { display_name: name.value.trim() || null, preferred_model: preferred.value || null },
        signal: ctx.signal,
      });
      problems.show(null);
      await ctx.refreshMe(); // the top bar shows the new name
      toast("Profile saved.");
    } catch (err) {
      if (!ctx.signal.aborted) problems.show(err);
    }
  });
  try {
    await modelOptions(ctx, preferred, me.preferred_model);
  } catch (err) {
    if (!ctx.signal.aborted) problems.show(err);
  }
  return section("Profile", form);
}

export function passwordSection(ctx) {
  const current = h("input", { type: "password", name: "current_password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", name: "new_password", autocomplete: "new-password", required: true, minlength: "10" });
  const problems = errorBox({ current_password: "Current password", new_password: "New password" });
  const form = h(
    "form",
    { class: "settings-form", "aria-label": "Change password" },
    field("Current password", current),
    field("New password", next, "At least 10 characters, not your username."),
    problems,
    h("div", { class: "actions" }, button("Change password", null, { kind: "primary", type: "submit" })),
  );
  onSubmit(form, async () => {
    try {
      await api("/v1/users/change-password", {
        method: "POST",
        body: { current_password: current.value, new_password: next.value },
        signal: ctx.signal,
      });
      current.value = "";
      next.value = "";
      problems.show(null);
      toast("Password changed. Your other sign-ins have been signed out.");
    } catch (err) {
      if (!ctx.signal.aborted) problems.show(err);
    }
  });
  return section("Password", form);
}

/** The limits as words: [label, value] pairs for the fields that are set. */
export function describeLimits(limits) {
  if (!limits) return [];
  const out = [];
  if (limits.rpm) out.push(["Requests per minute", String(limits.rpm)]);
  if (limits.tpm) out.push(["Tokens per minute", limits.tpm.toLocaleString()]);
  if (limits.max_concurrent) out.push(["Requests at once", String(limits.max_concurrent)]);
  if (limits.budget_usd !== null && limits.budget_usd !== undefined) {
    out.push(["Budget", `${formatCost(limits.budget_usd)} per ${limits.budget_period || "month"}`]);
  }
  if (limits.models?.length) out.push(["Allowed models", limits.models.join(", ")]);
  return out;
}

export function limitsSection(ctx) {
  const rows = describeLimits(ctx.me.effective_limits);
  if (!ctx.me.effective_limits) return null;
  const body = rows.length
    ? h("dl", { class: "limits" }, rows.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]))
    : h("p", { text: "No limits apply to your account." });
  return section(
    "Your limits",
    h("p", { class: "muted", text: "Set by an administrator; a token you create can only narrow them." }),
    body,
  );
}
