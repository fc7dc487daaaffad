// The Models page: what is loaded now, the catalog (with load, unload and default
// for admins), and for admins the Hugging Face search with live downloads. Its parts
// live in ../models/.

import { append, h } from "../dom.js";
import { createCatalog } from "../models/catalog.js";
import { createHub } from "../models/hub.js";
import { createJobs } from "../models/jobs.js";
import { createLoaded } from "../models/loaded.js";

export async function render(ctx) {
  const admin = ctx.me.role === "admin";
  const catalog = createCatalog(ctx);
  const loaded = createLoaded(ctx, catalog.syncLoaded);
  catalog.onChange(loaded.refresh);
  append(ctx.main, [
    h("h1", { text: "Models" }),
    admin ? null : h("p", { class: "muted", text: "An administrator downloads, loads and unloads models." }),
    loaded.section,
    catalog.section,
  ]);
  if (admin) {
    // A finished download is a new catalog entry.
    const jobs = createJobs(ctx, { onCompleted: () => catalog.reload() });
    ctx.main.append(createHub(ctx, jobs).section);
    jobs.loadExisting();
  }
  loaded.start(); // runs until the person leaves the page (ctx.signal)
  await catalog.reload();
}
