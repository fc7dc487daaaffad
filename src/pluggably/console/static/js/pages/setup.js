// First run (/ui/setup?token=…, the link the server logged): creates the first
// administrator (POST /ui/api/setup), then sends the person to sign in. Also holds
// the account form that the register page shares.

import { session } from "../api.js";
import { button, errorBox, field, h } from "../dom.js";

// The server keeps these names for its own accounts (users/schemas.py).
const RESERVED = new Set(["admin", "root", "system", "local", "pluggably"]);
const USERNAME = /^[a-z0-9][a-z0-9_.-]{2,63}$/;
export const PASSWORD_HINT = "At least 10 characters, and not your username.";

/** Reads a one-time token from the query string and takes it out of the address bar
 * (and so out of the history and of anything that copies the URL). */
export function takeFromUrl(ctx, name) {
  const value = ctx.query.get(name) || "";
  if (ctx.query.has(name)) {
    const rest = new URLSearchParams(ctx.query);
    rest.delete(name);
    const search = rest.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }
  return value;
}

/** An error's message, with each field's complaint when the server listed them. */
export function describe(err) {
  const details = Array.isArray(err?.details) ? err.details : [];
  const fields = details
    .map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`)
    .filter((line) => !line.startsWith(": "));
  return fields.length ? `${err.message} ${fields.join("; ")}` : err?.message || String(err);
}

function problem(values, allowEmail) {
  const name = values.username.toLowerCase();
  if (RESERVED.has(name)) {
    return `The username “${name}” is reserved for the server's own account; choose another.`;
  }
  if (!(allowEmail && name.includes("@")) && !USERNAME.test(name)) {
    return "The username needs 3 to 64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit.";
  }
  if (values.password.length < 10) return "The password must be at least 10 characters.";
  if (values.password.toLowerCase() === name) return "The password must not be your username.";
  if (values.password !== values.confirm) return "The two passwords are not the same.";
  return null;
}

/** Username, Password, Confirm password, Display name (optional) and "Create account".
 * `submit(values)` runs on a valid form; what it throws is shown above the fields. */
export function accountForm(submit, { usernameHint, allowEmail = false } = {}) {
  const error = errorBox();
  const input = (attrs) => h("input", { required: true, ...attrs });
  const username = input({ type: "text", name: "username", autocomplete: "username", autocapitalize: "none", spellcheck: "false" });
  const password = input({ type: "password", name: "password", autocomplete: "new-password" });
  const confirm = input({ type: "password", name: "confirm", autocomplete: "new-password" });
  const display = h("input", { type: "text", name: "display_name", autocomplete: "name", maxlength: "200" });
  const create = button("Create account", null, { kind: "primary", type: "submit" });
  const form = h(
    "form",
    { class: "account-form" },
    error,
    field("Username", username, usernameHint || "3–64 characters: letters, digits, '_', '.', '-'."),
    field("Password", password, PASSWORD_HINT),
    field("Confirm password", confirm),
    field("Display name (optional)", display, "How the console greets you."),
    h("div", { class: "actions" }, create),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {
      username: username.value.trim(),
      password: password.value,
      confirm: confirm.value,
      display_name: display.value.trim() || null,
    };
    const wrong = problem(values, allowEmail);
    error.show(wrong ? new Error(wrong) : null);
    if (wrong) return;
    create.disabled = true;
    try {
      await submit(values);
    } catch (err) {
      error.show(new Error(describe(err)));
      create.disabled = false;
    }
  });
  return { form, focus: () => username.focus() };
}

export async function render(ctx) {
  const token = takeFromUrl(ctx, "token");
  const card = h("section", { class: "card narrow", "aria-labelledby": "setup-title" },
    h("h1", { id: "setup-title", text: "Set up Pluggably" }));
  ctx.main.append(card);
  let info = null;
  try {
    info = await session.bootstrap();
  } catch {
    /* try the form anyway: the server answers for itself */
  }
  if (ctx.signal.aborted) return;
  const signIn = h("a", { href: "/ui/login", text: "Sign in" });
  if (info && !info.setup_required) {
    card.append(h("p", { class: "notice" }, "Setup is already complete: an administrator exists. ", signIn, "."));
    return;
  }
  if (!token) {
    card.append(
      h("p", { class: "notice" },
        "This page needs the one-time setup link from the server's log: look for the line ",
        h("code", { text: "first_run_setup" }),
        " and open the link it shows."),
    );
    return;
  }
  const { form, focus } = accountForm(
    async (values) => {
      await session.setup({
        token,
        username: values.username,
        password: values.password,
        display_name: values.display_name,
      });
      await ctx.navigate("/ui/login?setup=done", { replace: true });
    },
    { usernameHint: "The administrator's sign-in name: 3–64 characters (letters, digits, '_', '.', '-'); “admin” is reserved." },
  );
  card.append(
    h("p", { text: "Create the administrator account. This link works once: after this, people sign in with their accounts." }),
    form,
  );
  focus();
}
