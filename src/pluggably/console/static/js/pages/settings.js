// The Settings page: profile, password, the limits on the account, API tokens and
// provider keys. Its parts live in ../settings/.

import { append, h } from "../dom.js";
import { passwordSection, profileSection, limitsSection } from "../settings/profile.js";
import { providerKeysSection } from "../settings/provider_keys.js";
import { tokensSection } from "../settings/tokens.js";

export async function render(ctx) {
  ctx.main.append(h("h1", { text: "Settings" }));
  const [profile, tokens, keys] = await Promise.all([
    profileSection(ctx),
    tokensSection(ctx),
    providerKeysSection(ctx),
  ]);
  if (ctx.signal.aborted) return;
  append(ctx.main, [
    h("div", { class: "settings-grid" }, profile, passwordSection(ctx), limitsSection(ctx)),
    tokens,
    keys,
  ]);
}
