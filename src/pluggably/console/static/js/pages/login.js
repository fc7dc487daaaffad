// Sign in: username (or email) and password → the session cookie (POST
// /ui/api/session), then on to where the person was going (?next=/ui/…) or the chat.
// Also says when the server still waits for its first-run setup, and confirms a
// setup just finished (?setup=done).

import { session } from "../api.js";
import { button, errorBox, field, h } from "../dom.js";

/** Only a path of the console itself: never another site (an open redirect). */
function destination(next) {
  return next && next.startsWith("/ui/") && !next.startsWith("/ui/login") ? next : "/ui/chat";
}

function notices(ctx, info) {
  const box = h("div", { class: "login-notices", role: "status" });
  if (ctx.query.get("setup") === "done") {
    box.append(h("p", { class: "notice", text: "Administrator created — sign in." }));
  }
  if (info?.setup_required) {
    box.append(
      h(
        "p",
        { class: "notice" },
        "This server has no administrator yet. Its one-time setup link is in the server's log " +
          "(the line ",
        h("code", { text: "first_run_setup" }),
        "): open that link to create the administrator account.",
      ),
    );
  }
  return box;
}

export async function render(ctx) {
  const error = errorBox();
  const username = h("input", {
    type: "text",
    name: "username",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
  });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = button("Sign in", null, { kind: "primary", type: "submit" });
  const form = h(
    "form",
    { class: "login-form" },
    error,
    field("Username", username, "Your username or email address."),
    field("Password", password),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      await session.signIn(username.value.trim(), password.value);
      await ctx.refreshMe();
      await ctx.navigate(destination(ctx.query.get("next")), { replace: true });
    } catch (err) {
      if (ctx.signal.aborted) return;
      error.show(err);
      submit.disabled = false;
      password.select();
      password.focus();
    }
  });

  let info = null;
  try {
    info = await session.bootstrap();
  } catch {
    /* the form works without it */
  }
  if (ctx.signal.aborted) return;
  const extra = info?.registration_open
    ? h("p", { class: "muted" }, "No account yet? ", h("a", { href: "/ui/register", text: "Create one" }), ".")
    : h("p", { class: "muted", text: "No account yet? Ask an administrator for an invite link." });
  ctx.main.append(
    h("section", { class: "card narrow", "aria-labelledby": "login-title" },
      h("h1", { id: "login-title", text: "Sign in" }),
      notices(ctx, info),
      form,
      extra,
    ),
  );
  username.focus();
}
