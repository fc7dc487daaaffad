// Admin › Usage: GET /v1/usage over a window, grouped by day, model, provider, user or
// API token, for everyone (user_id=*) or one person: a bar chart of cost or requests,
// the same numbers in a table, the totals, and the CSV (/v1/usage.csv).

import { api } from "../api.js";
import { button, errorBox, field, formatCost, h, scrollBox, table } from "../dom.js";
import { allUsers, heading, nameOf } from "./common.js";
import { barChart } from "./chart.js";

const GROUPS = [["day", "Day"], ["model", "Model"], ["provider", "Provider"], ["user", "User"], ["token", "API token"]];
const MEASURES = { cost_usd: ["Cost", (v) => formatCost(v)], requests: ["Requests", (v) => String(v)] };
const NUMBER = new Intl.NumberFormat();

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function select(options, value) {
  const el = h("select", {}, options.map(([v, text]) => h("option", { value: v, text })));
  el.value = value;
  return el;
}

export async function render(ctx, container) {
  const errors = errorBox();
  const today = new Date();
  const from = h("input", { type: "date", value: isoDay(new Date(today.getTime() - 29 * 86400000)) });
  const to = h("input", { type: "date", value: isoDay(today) });
  const groupBy = select(GROUPS, "day");
  const whose = select([["*", "Everyone"], [ctx.me.id, "Me"]], "*");
  const measure = select(Object.entries(MEASURES).map(([k, [label]]) => [k, label]), "cost_usd");
  const result = h("div", { class: "usage-result" });
  const csv = button("Download CSV", () => download(params(), errors));

  const params = () =>
    new URLSearchParams({ from: from.value, to: to.value, group_by: groupBy.value, user_id: whose.value });

  let latest = 0; // answers may come back out of order: only the last question's shows
  async function load() {
    errors.show(null);
    const asked = ++latest;
    try {
      const report = await api(`/v1/usage?${params()}`, { signal: ctx.signal });
      if (asked === latest) result.replaceChildren(...show(report, measure.value));
    } catch (err) {
      if (!ctx.signal.aborted) errors.show(err);
    }
  }

  const form = h(
    "form",
    { class: "admin-toolbar usage-filters", onsubmit: (e) => (e.preventDefault(), load()) },
    field("From", from),
    field("To", to),
    field("Group by", groupBy),
    field("User", whose),
    field("Chart", measure),
    h("div", { class: "actions" }, button("Show", null, { kind: "primary", type: "submit" }), csv),
  );
  for (const control of [groupBy, whose, measure]) control.addEventListener("change", load);
  container.append(heading("Usage"), form, errors, result);
  try {
    for (const user of await allUsers(ctx.signal)) {
      if (user.id !== ctx.me.id) whose.append(h("option", { value: user.id, text: nameOf(user) }));
    }
  } catch (err) {
    if (!ctx.signal.aborted) errors.show(err);
  }
  await load();
}

function keyOf(row, groupBy) {
  if (row.name) return row.name;
  if (row.key) return row.key;
  return { token: "No API token", model: "No model", provider: "No provider" }[groupBy] || "None";
}

function show(report, measureKey) {
  const [measureLabel, format] = MEASURES[measureKey];
  const group = GROUPS.find(([k]) => k === report.group_by)[1].toLowerCase();
  const bars = report.rows.map((r) => ({ label: keyOf(r, report.group_by), value: r[measureKey] }));
  const chart = barChart(bars, { title: `${measureLabel} by ${group}`, format });
  const cells = (r) => [NUMBER.format(r.requests), NUMBER.format(r.errors), NUMBER.format(r.prompt_tokens), NUMBER.format(r.completion_tokens), formatCost(r.cost_usd)];
  const usageTable = table(
    "Usage",
    [GROUPS.find(([k]) => k === report.group_by)[1], "Requests", "Errors", "Prompt tokens", "Completion tokens", "Cost"],
    report.rows.map((r) => h("tr", {}, h("th", { scope: "row", text: keyOf(r, report.group_by) }), cells(r).map((c) => h("td", { text: c })))),
  );
  usageTable.append(h("tfoot", {}, h("tr", {}, h("th", { scope: "row", text: "Total" }), cells(report.totals).map((c) => h("td", { text: c })))));
  const t = report.totals;
  const totals = h(
    "p",
    { class: "usage-totals" },
    `Total: ${NUMBER.format(t.requests)} requests (${NUMBER.format(t.errors)} failed), `,
    `${NUMBER.format(t.prompt_tokens + t.completion_tokens)} tokens, ${formatCost(t.cost_usd)}.`,
  );
  return [totals, h("figure", { class: "usage-chart" }, chart), scrollBox(usageTable, "Usage")];
}

/** The CSV needs the CSRF header, which a plain link cannot send: fetch it, then
 * save it through a Blob URL with the server's file name. */
async function download(params, errors) {
  errors.show(null);
  try {
    const response = await api(`/v1/usage.csv?${params}`, { raw: true, headers: { Accept: "text/csv" } });
    const blob = await response.blob();
    const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: named ? named[1] : "usage.csv", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    errors.show(err);
  }
}
