// The Admin page: a sub-navigation over its sections, each a module under ../admin/
// exporting render(ctx, container). /ui/admin is the users section.

import { h } from "../dom.js";

const SECTIONS = [
  ["users", "Users"],
  ["invites", "Invites"],
  ["usage", "Usage"],
  ["storage", "Storage"],
  ["requests", "Requests"],
];

export async function render(ctx) {
  const section = ctx.params[0] || "users";
  const found = SECTIONS.find(([key]) => key === section);
  if (!found) return ctx.navigate("/ui/admin/users", { replace: true });
  ctx.setTitle(`${found[1]} · Admin`);
  const nav = h(
    "nav",
    { class: "admin-nav", "aria-label": "Admin sections" },
    h(
      "ul",
      {},
      SECTIONS.map(([key, label]) =>
        h("li", {}, h("a", { href: `/ui/admin/${key}`, "aria-current": key === section ? "page" : null }, label)),
      ),
    ),
  );
  const body = h("section", { class: "admin-section", "aria-labelledby": "admin-section-title" });
  ctx.main.append(h("h1", { text: "Admin" }), nav, body);
  const module = await import(`../admin/${section}.js`);
  if (ctx.signal.aborted) return;
  await module.render(ctx, body);
}
