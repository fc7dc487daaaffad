// Admin › Invites: create a single-use invite (POST /v1/users/invites) and hand its
// link over (shown once: the server keeps only a hash), list them with their status,
// and revoke pending ones (DELETE /v1/users/invites/{id}).

import { api } from "../api.js";
import { button, confirmDialog, errorBox, field, formatDate, h, scrollBox, table, toast } from "../dom.js";
import { heading, row } from "./common.js";

const BADGES = { pending: "ok", used: "", expired: "warn", revoked: "bad" };

export async function render(ctx, container) {
  const errors = errorBox();
  const email = h("input", { type: "email", name: "email", autocomplete: "off" });
  const days = h("input", { type: "number", name: "expires_days", min: "1", max: "365", step: "1", inputmode: "numeric" });
  const secret = h("div", { class: "invite-secret", "aria-live": "polite" });
  const invitesTable = table("Invites", ["Email", "Status", "Created", "Expires", "Used", "Actions"], []);
  const tbody = invitesTable.tBodies[0];
  const empty = h("p", { class: "muted", hidden: true, text: "No invites yet." });

  async function load() {
    const { invites } = await api("/v1/users/invites", { signal: ctx.signal });
    invites.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    tbody.replaceChildren(...invites.map((invite) => inviteRow(invite, load, errors)));
    empty.hidden = invites.length > 0;
  }

  async function create(event) {
    event.preventDefault();
    errors.show(null);
    const body = {};
    if (email.value.trim()) body.email = email.value.trim();
    if (days.value.trim()) body.expires_days = parseInt(days.value, 10);
    let created;
    try {
      created = await api("/v1/users/invites", { method: "POST", body });
    } catch (err) {
      errors.show(err);
      return;
    }
    form.reset();
    showLink(secret, `${location.origin}/ui/register?invite=${encodeURIComponent(created.token)}`);
    await load().catch((err) => ctx.signal.aborted || errors.show(err));
  }

  const form = h(
    "form",
    { class: "card admin-form", onsubmit: create },
    h("h3", { text: "New invite" }),
    field("Email", email, "Optional: only this address may use the invite."),
    field("Expires in days", days, "Optional: 1 to 365; the server's default otherwise."),
    button("Create invite", null, { kind: "primary", type: "submit" }),
  );
  container.append(heading("Invites"), form, errors, secret, scrollBox(invitesTable, "Invites"), empty);
  try {
    await load();
  } catch (err) {
    if (!ctx.signal.aborted) errors.show(err);
  }
}

/** The link, once: whoever opens it can create an account. */
function showLink(box, link) {
  const code = h("code", { class: "invite-link", text: link });
  const copy = button("Copy link", async () => {
    try {
      await navigator.clipboard.writeText(link);
      toast("Invite link copied.");
    } catch {
      // No clipboard (a page served over plain http, not localhost): select it instead.
      getSelection().selectAllChildren(code);
      toast("Select and copy the link: the browser refused the clipboard.", "error");
    }
  });
  box.replaceChildren(
    h(
      "div",
      { class: "secret" },
      h("p", {}, h("strong", { text: "Invite link" }), " — shown only now; send it to the person it is for:"),
      code,
      h("div", { class: "actions" }, copy),
    ),
  );
  copy.focus();
}

function inviteRow(invite, reload, errors) {
  const who = invite.email || `created ${formatDate(invite.created_at)}`;
  const revoke = async () => {
    if (!(await confirmDialog(`Revoke the invite for ${who}?`, { confirm: "Revoke", danger: true }))) return;
    errors.show(null);
    try {
      await api(`/v1/users/invites/${encodeURIComponent(invite.id)}`, { method: "DELETE" });
      toast("Invite revoked.");
      await reload();
    } catch (err) {
      errors.show(err);
    }
  };
  return row([
    invite.email || "Anyone",
    h("span", { class: `badge ${BADGES[invite.status] ?? ""}`, text: invite.status }),
    formatDate(invite.created_at),
    formatDate(invite.expires_at),
    invite.used_at ? formatDate(invite.used_at) : "—",
    invite.status === "pending" ? button("Revoke", revoke, { kind: "danger", label: `Revoke invite for ${who}` }) : "—",
  ]);
}
