// The person's own provider credentials: stored sealed by the server and only ever
// shown masked. The secret fields are emptied once the server has the key.

import { api } from "../api.js";
import { button, clear, confirmDialog, errorBox, field, formatDate, h, scrollBox, table, toast } from "../dom.js";
import { onSubmit, section } from "./common.js";

const TYPE_NAMES = {
  api_key: "API key",
  endpoint_key: "Endpoint and key",
  oauth_token: "OAuth token",
  service_account: "Service account",
};
// Which inputs each credential type sends.
const TYPE_FIELDS = {
  api_key: ["api_key"],
  endpoint_key: ["api_key", "endpoint"],
  oauth_token: ["oauth_token"],
  service_account: ["service_account_json"],
};
const LABELS = {
  provider: "Provider",
  credential_type: "Credential type",
  api_key: "API key",
  endpoint: "Endpoint",
  oauth_token: "OAuth token",
  service_account_json: "Service account JSON",
  label: "Label",
};
const HEADERS = ["Provider", "Type", "Key", "Label", "Added", "Actions"];

function secretInput(name) {
  return h("input", { type: "password", name, autocomplete: "off", spellcheck: "false" });
}

export async function providerKeysSection(ctx) {
  const grid = table("Provider keys", HEADERS, []);
  const tbody = grid.tBodies[0];
  const listProblems = errorBox();

  async function refresh() {
    try {
      const keys = await api("/v1/users/provider-keys", { signal: ctx.signal });
      clear(tbody).append(...keys.map(row));
      if (!keys.length) tbody.append(h("tr", {}, h("td", { colspan: String(HEADERS.length), class: "muted", text: "No provider keys yet." })));
      listProblems.show(null);
    } catch (err) {
      if (!ctx.signal.aborted) listProblems.show(err);
    }
  }

  function row(k) {
    return h(
      "tr",
      {},
      h("th", { scope: "row", text: k.provider }),
      h("td", { text: TYPE_NAMES[k.credential_type] || k.credential_type }),
      h("td", {}, h("code", { text: k.masked_key })),
      h("td", { text: k.label || "—" }),
      h("td", { text: formatDate(k.created_at) }),
      h("td", {}, button("Delete", () => remove(k), { kind: "danger", label: `Delete the ${k.provider} key` })),
    );
  }

  async function remove(k) {
    const sure = await confirmDialog(`Delete your ${k.provider} key (${k.masked_key})?`, { confirm: "Delete", danger: true });
    if (!sure) return;
    try {
      await api(`/v1/users/provider-keys/${encodeURIComponent(k.provider)}`, { method: "DELETE", signal: ctx.signal });
      toast(`Your ${k.provider} key was deleted.`);
      await refresh();
    } catch (err) {
      if (!ctx.signal.aborted) listProblems.show(err);
    }
  }

  let providers = [];
  try {
    // discover=false: listing providers must not call each one with the person's keys.
    const answer = await api("/v1/providers?discover=false", { signal: ctx.signal });
    providers = answer.providers.filter((p) => p.credential_types?.length);
  } catch (err) {
    if (!ctx.signal.aborted) listProblems.show(err);
  }
  await refresh();
  return section(
    "Provider keys",
    h("p", { class: "muted", text: "Your own keys for hosted providers, used for your requests only. They are stored encrypted and shown masked." }),
    listProblems,
    scrollBox(grid),
    keyForm(ctx, providers, refresh),
  );
}

function keyForm(ctx, providers, refresh) {
  const inputs = {
    provider: h("select", { name: "provider" }, providers.map((p) => h("option", { value: p.name, text: p.name }))),
    credential_type: h("select", { name: "credential_type" }),
    api_key: secretInput("api_key"),
    endpoint: h("input", { type: "url", name: "endpoint", autocomplete: "off", placeholder: "https://…" }),
    oauth_token: secretInput("oauth_token"),
    service_account_json: h("textarea", { name: "service_account_json", rows: "5", autocomplete: "off", spellcheck: "false" }),
    label: h("input", { type: "text", name: "label", autocomplete: "off", maxlength: "100" }),
  };
  const wraps = {};
  for (const [name, control] of Object.entries(inputs)) wraps[name] = field(LABELS[name], control);
  const problems = errorBox(LABELS);

  const showTypes = () => {
    const chosen = providers.find((p) => p.name === inputs.provider.value);
    const types = chosen?.credential_types || [];
    clear(inputs.credential_type).append(...types.map((t) => h("option", { value: t, text: TYPE_NAMES[t] || t })));
    showFields();
  };
  const showFields = () => {
    const wanted = TYPE_FIELDS[inputs.credential_type.value] || [];
    for (const name of ["api_key", "endpoint", "oauth_token", "service_account_json"]) wraps[name].hidden = !wanted.includes(name);
  };
  inputs.provider.addEventListener("change", showTypes);
  inputs.credential_type.addEventListener("change", showFields);
  showTypes();

  const form = h(
    "form",
    { class: "settings-form", "aria-label": "Add a provider key" },
    h("h3", { text: "Add a provider key" }),
    providers.length ? null : h("p", { class: "muted", text: "No provider takes a key of yours on this server." }),
    Object.values(wraps),
    problems,
    h("div", { class: "actions" }, button("Save key", null, { kind: "primary", type: "submit" })),
  );
  onSubmit(form, async () => {
    const type = inputs.credential_type.value;
    const body = { provider: inputs.provider.value, credential_type: type };
    for (const name of TYPE_FIELDS[type] || []) body[name] = inputs[name].value.trim();
    if (inputs.label.value.trim()) body.label = inputs.label.value.trim();
    try {
      const saved = await api("/v1/users/provider-keys", { method: "POST", body, signal: ctx.signal });
      for (const name of ["api_key", "oauth_token", "service_account_json", "endpoint", "label"]) inputs[name].value = "";
      problems.show(null);
      toast(`Saved your ${saved.provider} key (${saved.masked_key}).`);
      await refresh();
    } catch (err) {
      if (!ctx.signal.aborted) problems.show(err);
    }
  });
  return form;
}
