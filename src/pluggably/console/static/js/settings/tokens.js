// API tokens: the list (no secrets), revoke, and the create form. A new token's
// secret is shown once, in this page's DOM only: never in the URL or any storage,
// and gone when the person leaves the page or presses Done.

import { api } from "../api.js";
import { button, clear, confirmDialog, errorBox, field, formatDate, h, scrollBox, table, toast, uid } from "../dom.js";
import { describeLimits } from "./profile.js";
import { onSubmit, section } from "./common.js";

const HEADERS = ["Name", "Prefix", "Scopes", "Created", "Expires", "Last used", "Limits", "Actions"];
const LABELS = {
  name: "Token name",
  scopes: "Scopes",
  expires_days: "Expires in days",
  rpm: "Requests per minute",
  tpm: "Tokens per minute",
  max_concurrent: "Requests at once",
  budget_usd: "Budget (USD)",
  budget_period: "Budget period",
  models: "Allowed models",
};

function limitsText(limits) {
  const rows = describeLimits(limits);
  return rows.length ? rows.map(([k, v]) => `${k}: ${v}`).join("; ") : "—";
}

function limitFields() {
  const number = (name, step = "1") => h("input", { type: "number", name, min: step === "1" ? "1" : "0", step, inputmode: "numeric" });
  const inputs = {
    rpm: number("rpm"),
    tpm: number("tpm"),
    max_concurrent: number("max_concurrent"),
    budget_usd: number("budget_usd", "0.01"),
    budget_period: h("select", { name: "budget_period" }, ["month", "week", "day"].map((p) => h("option", { value: p, text: p }))),
    models: h("input", { type: "text", name: "models", autocomplete: "off" }),
  };
  const el = h(
    "details",
    { class: "token-limits" },
    h("summary", { text: "Limits (optional)" }),
    h("p", { class: "muted", text: "Never wider than your own limits. Empty fields set no limit of the token's own." }),
    h(
      "div",
      { class: "limit-grid" },
      field(LABELS.rpm, inputs.rpm),
      field(LABELS.tpm, inputs.tpm),
      field(LABELS.max_concurrent, inputs.max_concurrent),
      field(LABELS.budget_usd, inputs.budget_usd),
      field(LABELS.budget_period, inputs.budget_period),
    ),
    field(LABELS.models, inputs.models, "Comma-separated patterns, e.g. local:*, openai:gpt-4o*"),
  );
  const read = () => {
    const limits = {};
    for (const key of ["rpm", "tpm", "max_concurrent"]) {
      if (inputs[key].value !== "") limits[key] = Number.parseInt(inputs[key].value, 10);
    }
    if (inputs.budget_usd.value !== "") {
      limits.budget_usd = Number.parseFloat(inputs.budget_usd.value);
      limits.budget_period = inputs.budget_period.value;
    }
    const models = inputs.models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) limits.models = models;
    return Object.keys(limits).length ? limits : undefined;
  };
  return { el, read };
}

/** The one-time view of a new token's secret. */
function revealBox() {
  const title = uid("new-token");
  const secret = h("code", { class: "secret" });
  const box = h("div", { class: "notice new-token", role: "region", "aria-labelledby": title, hidden: true });
  const hide = () => {
    secret.textContent = "";
    box.hidden = true;
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret.textContent);
      toast("Token copied.");
    } catch {
      getSelection().selectAllChildren(secret); // no clipboard here: the person copies it
      toast("Copy the selected token by hand.", "error");
    }
  };
  box.append(
    h("h3", { id: title, text: "Your new token" }),
    h("p", { text: "Copy it now: it won't be shown again." }),
    secret,
    h("div", { class: "actions" }, button("Copy", copy, { kind: "primary", label: "Copy the token" }), button("Done", hide)),
  );
  const show = (name, token) => {
    box.querySelector("h3").textContent = `Your new token “${name}”`;
    secret.textContent = token;
    box.hidden = false;
    box.querySelector("button").focus();
  };
  return { el: box, show, hide };
}

export async function tokensSection(ctx) {
  const admin = ctx.me.role === "admin";
  const grid = table("API tokens", HEADERS, []);
  const tbody = grid.tBodies[0];
  const listProblems = errorBox();
  const reveal = revealBox();
  ctx.signal.addEventListener("abort", reveal.hide, { once: true });

  async function refresh() {
    try {
      const tokens = await api("/v1/users/tokens", { signal: ctx.signal });
      clear(tbody).append(...tokens.map(row));
      if (!tokens.length) tbody.append(h("tr", {}, h("td", { colspan: String(HEADERS.length), class: "muted", text: "No API tokens yet." })));
      listProblems.show(null);
    } catch (err) {
      if (!ctx.signal.aborted) listProblems.show(err);
    }
  }

  function row(t) {
    return h(
      "tr",
      {},
      h("th", { scope: "row", text: t.name }),
      h("td", {}, h("code", { text: `${t.prefix}…` })),
      h("td", { text: t.scopes.join(", ") }),
      h("td", { text: formatDate(t.created_at) }),
      h("td", { text: t.expires_at ? formatDate(t.expires_at) : "never" }),
      h("td", { text: t.last_used_at ? formatDate(t.last_used_at) : "never" }),
      h("td", { text: limitsText(t.limits) }),
      h("td", {}, button("Revoke", () => revoke(t), { kind: "danger", label: `Revoke token ${t.name}` })),
    );
  }

  async function revoke(t) {
    const sure = await confirmDialog(`Revoke the token “${t.name}”? Programs using it stop working.`, { confirm: "Revoke", danger: true });
    if (!sure) return;
    try {
      await api(`/v1/users/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE", signal: ctx.signal });
      toast(`Token “${t.name}” revoked.`);
      await refresh();
    } catch (err) {
      if (!ctx.signal.aborted) listProblems.show(err);
    }
  }

  await refresh();
  return section(
    "API tokens",
    h("p", { class: "muted", text: "For programs that call this server: send one as X-API-Key or Authorization: Bearer." }),
    reveal.el,
    listProblems,
    scrollBox(grid),
    createForm(ctx, admin, reveal, refresh),
  );
}

function createForm(ctx, admin, reveal, refresh) {
  const name = h("input", { type: "text", name: "name", autocomplete: "off", maxlength: "100", required: true });
  const scopes = ["read", "write", ...(admin ? ["admin"] : [])].map((scope) =>
    h("input", { type: "checkbox", name: "scopes", value: scope, checked: scope !== "admin" }),
  );
  const expires = h("input", { type: "number", name: "expires_days", min: "1", max: "3650", inputmode: "numeric" });
  const limits = limitFields();
  const problems = errorBox(LABELS);
  const form = h(
    "form",
    { class: "settings-form", "aria-label": "Create a token" },
    h("h3", { text: "Create a token" }),
    field(LABELS.name, name),
    h(
      "fieldset",
      { class: "scopes" },
      h("legend", { text: "Scopes" }),
      scopes.map((box) => h("label", { class: "check" }, box, ` ${box.value}`)),
    ),
    field(LABELS.expires_days, expires, "Leave empty for a token that does not expire."),
    limits.el,
    problems,
    h("div", { class: "actions" }, button("Create token", null, { kind: "primary", type: "submit" })),
  );
  onSubmit(form, async () => {
    const chosen = scopes.filter((s) => s.checked).map((s) => s.value);
    if (!chosen.length) return problems.show(new Error("Choose at least one scope."));
    const body = { name: name.value.trim(), scopes: chosen, limits: limits.read() };
    if (expires.value !== "") body.expires_days = Number.parseInt(expires.value, 10);
    try {
      const created = await api("/v1/users/tokens", { method: "POST", body, signal: ctx.signal });
      problems.show(null);
      form.reset();
      reveal.show(created.name, created.token);
      await refresh();
    } catch (err) {
      if (!ctx.signal.aborted) problems.show(err);
    }
  });
  return form;
}
