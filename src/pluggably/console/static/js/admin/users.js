// Admin › Users: every account (GET /v1/users, searchable, paged), with per-person
// controls: role, disable/enable (PATCH /v1/users/{id}) and limits (limits.js). The
// server refuses (409) changes that would lock administrators out; its message shows.

import { api } from "../api.js";
import { button, errorBox, field, formatDate, h, scrollBox, table, toast } from "../dom.js";
import { heading, nameOf, row } from "./common.js";
import { openLimits } from "./limits.js";

const PAGE = 50;
const HEADERS = ["Username", "Email", "Display name", "Role", "Disabled", "Created", "Last login", "Actions"];

export async function render(ctx, container) {
  const errors = errorBox();
  const search = h("input", { type: "search", name: "q", autocomplete: "off" });
  const usersTable = table("Users", HEADERS, []);
  const tbody = usersTable.tBodies[0];
  const empty = h("p", { class: "muted", hidden: true, text: "No account matches." });
  const more = button("Load more users", () => load(false));
  let cursor = null;

  async function load(reset) {
    errors.show(null);
    const query = new URLSearchParams({ limit: String(PAGE) });
    const q = search.value.trim();
    if (q) query.set("q", q);
    if (!reset && cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/v1/users?${query}`, { signal: ctx.signal });
      if (reset) tbody.replaceChildren();
      for (const user of page.users) tbody.append(userRow(user, ctx, errors));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = tbody.rows.length > 0;
    } catch (err) {
      if (!ctx.signal.aborted) errors.show(err);
    }
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(true), 300);
  });
  const form = h(
    "form",
    { class: "admin-toolbar", role: "search", onsubmit: (e) => (e.preventDefault(), load(true)) },
    field("Search users", search),
    button("Search", null, { type: "submit" }),
  );
  container.append(heading("Users"), form, errors, scrollBox(usersTable, "Users"), empty, h("div", { class: "actions" }, more));
  await load(true);
}

function userRow(user, ctx, errors) {
  const name = nameOf(user);
  const self = user.id === ctx.me.id;
  const replace = (updated, focusLabel) => {
    const fresh = userRow(updated, ctx, errors);
    tr.replaceWith(fresh);
    fresh.querySelector(`[aria-label="${CSS.escape(focusLabel)}"]`)?.focus();
  };
  const patch = async (body, focusLabel, done) => {
    errors.show(null);
    try {
      const updated = await api(`/v1/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body });
      replace(updated, focusLabel);
      toast(done(updated));
    } catch (err) {
      errors.show(err);
      return false;
    }
    return true;
  };

  const role = roleSelect(user, name, patch);

  const verb = user.disabled ? "Enable" : "Disable";
  const toggle = button(
    verb,
    () => patch({ disabled: !user.disabled }, `${user.disabled ? "Disable" : "Enable"} ${name}`, (u) => `${name} is ${u.disabled ? "disabled" : "enabled"}.`),
    { kind: user.disabled ? "secondary" : "danger", label: `${verb} ${name}` },
  );
  const limits = button("Limits", () => openLimits(user, name), { label: `Limits for ${name}` });

  const tr = row([
    h("span", {}, user.username || "—", self ? h("span", { class: "muted" }, " (you)") : null),
    user.email || "—",
    user.display_name || "—",
    role,
    user.disabled ? h("span", { class: "badge bad", text: "Yes" }) : "No",
    formatDate(user.created_at),
    formatDate(user.last_login_at),
    h("div", { class: "actions" }, toggle, limits),
  ]);
  tr.dataset.userId = user.id;
  return tr;
}

/** The account's role; a refused change (409) puts the select back. */
function roleSelect(user, name, patch) {
  const label = `Role for ${name}`;
  const role = h(
    "select",
    { "aria-label": label },
    h("option", { value: "user", text: "user" }),
    h("option", { value: "admin", text: "admin" }),
  );
  role.value = user.role;
  role.addEventListener("change", async () => {
    const said = (u) => `${name} is now ${u.role === "admin" ? "an admin" : "a user"}.`;
    if (!(await patch({ role: role.value }, label, said))) role.value = user.role;
  });
  return role;
}
