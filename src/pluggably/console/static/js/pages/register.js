// Create an account from an invite link (/ui/register?invite=…): POST
// /v1/users/register with the invite, then sign in with the same password and go to
// the chat. Without an invite, only when the server has open registration.

import { api, session } from "../api.js";
import { append, h } from "../dom.js";
import { accountForm, takeFromUrl } from "./setup.js";

export async function render(ctx) {
  const invite = takeFromUrl(ctx, "invite");
  const card = h("section", { class: "card narrow", "aria-labelledby": "register-title" },
    h("h1", { id: "register-title", text: "Create account" }));
  ctx.main.append(card);
  let info = null;
  try {
    info = await session.bootstrap();
  } catch {
    /* the server still checks the invite itself */
  }
  if (ctx.signal.aborted) return;
  const signIn = h("a", { href: "/ui/login", text: "sign in" });
  if (!invite && info && !info.registration_open) {
    card.append(
      h("p", { class: "notice" },
        "Accounts on this server need an invite: ask an administrator for an invite link. " +
          "Already have an account? ", signIn, "."),
    );
    return;
  }
  if (ctx.me) {
    card.append(h("p", { class: "notice", text: `You are signed in as ${ctx.me.username || ctx.me.email}; creating an account signs you in as the new one.` }));
  }
  const { form, focus } = accountForm(
    async (values) => {
      const body = { username: values.username, password: values.password };
      if (invite) body.invite_token = invite;
      if (values.display_name) body.display_name = values.display_name;
      await api("/v1/users/register", { method: "POST", body });
      await session.signIn(values.username, values.password);
      await ctx.refreshMe();
      await ctx.navigate("/ui/chat", { replace: true });
    },
    {
      allowEmail: true,
      usernameHint: "Your sign-in name: 3–64 characters (letters, digits, '_', '.', '-'), or your email address.",
    },
  );
  append(card, [
    invite ? h("p", { text: "You were invited to this Pluggably server. Choose how you sign in." }) : null,
    form,
    h("p", { class: "muted" }, "Already have an account? ", h("a", { href: "/ui/login", text: "Sign in" }), "."),
  ]);
  focus();
}
