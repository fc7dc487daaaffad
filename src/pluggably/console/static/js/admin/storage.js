// Admin › Storage: the models folder against its quota (GET /v1/storage) and the
// retention policy applied on demand (POST /v1/storage/cleanup): a dry run first
// says what would go; only then may the person clean up for real.

import { api } from "../api.js";
import { button, confirmDialog, errorBox, formatBytes, formatDate, h, scrollBox, table, toast } from "../dom.js";
import { heading, row } from "./common.js";

export async function render(ctx, container) {
  const errors = errorBox();
  const summary = h("div", { class: "card storage-summary" });
  const models = h("div");
  const outcome = h("div", { class: "cleanup-outcome", role: "status" });
  const dryRun = button("Dry run", () => cleanup(true), { kind: "secondary" });
  const clean = button("Clean up", () => cleanup(false), { kind: "danger" });
  clean.disabled = true;
  const hint = h("p", { class: "hint muted", text: "Run a dry run first to see what cleaning up would remove." });

  async function load() {
    const report = await api("/v1/storage", { signal: ctx.signal });
    summary.replaceChildren(...usageOf(report));
    models.replaceChildren(modelsTable(report.models));
  }

  async function cleanup(dry) {
    errors.show(null);
    if (!dry && !(await confirmDialog("Remove the files the dry run listed?", { confirm: "Clean up", danger: true }))) return;
    try {
      const report = await api("/v1/storage/cleanup", { method: "POST", body: { dry_run: dry } });
      outcome.replaceChildren(...describe(report));
      clean.disabled = !dry || report.removed.length === 0;
      if (!dry) {
        toast(`Freed ${formatBytes(report.freed_bytes)}.`);
        await load();
      }
    } catch (err) {
      errors.show(err);
    }
  }

  container.append(
    heading("Storage"),
    errors,
    summary,
    h("h3", { text: "Retention clean-up" }),
    hint,
    h("div", { class: "actions" }, dryRun, clean),
    outcome,
    models,
  );
  try {
    await load();
  } catch (err) {
    if (!ctx.signal.aborted) errors.show(err);
  }
}

function usageOf(report) {
  const used = formatBytes(report.used_bytes);
  if (report.limit_bytes === null) {
    return [h("p", {}, h("strong", { text: used }), " used; no storage limit is set.")];
  }
  const meterId = "storage-meter";
  return [
    h("label", { for: meterId, class: "storage-label" }, `Storage used: ${used} of ${formatBytes(report.limit_bytes)}`),
    h("meter", { id: meterId, min: "0", max: String(report.limit_bytes), value: String(report.used_bytes), high: String(report.limit_bytes * 0.9) }),
    h("p", { class: "muted", text: `${formatBytes(report.free_bytes)} free.` }),
  ];
}

function modelsTable(models) {
  const sorted = [...models].sort((a, b) => (b.size_bytes ?? 0) - (a.size_bytes ?? 0));
  const rows = sorted.map((m) => row([m.id, formatBytes(m.size_bytes), formatDate(m.last_used_at), m.pinned ? "Yes" : "No"]));
  if (!rows.length) return h("p", { class: "muted", text: "No model files are stored." });
  return scrollBox(table("Stored models", ["Model", "Size", "Last used", "Pinned"], rows), "Stored models");
}

function describe(report) {
  const what = report.dry_run ? "Dry run" : "Clean-up";
  if (!report.removed.length) {
    return [h("p", { text: `${what}: nothing ${report.dry_run ? "would be" : "was"} removed.` })];
  }
  const head = report.dry_run
    ? `Dry run: ${report.removed.length} item(s) would be removed, freeing ${formatBytes(report.freed_bytes)}.`
    : `Removed ${report.removed.length} item(s), freeing ${formatBytes(report.freed_bytes)}.`;
  const rows = report.removed.map((r) => row([r.kind, r.id, formatBytes(r.bytes), r.reason]));
  const caption = report.dry_run ? "Would be removed" : "Removed";
  return [h("p", { text: head }), scrollBox(table(caption, ["Kind", "Item", "Size", "Reason"], rows), caption)];
}
