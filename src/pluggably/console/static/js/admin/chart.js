// A hand-drawn horizontal bar chart in SVG: one bar per key, its value at its end.
// role="img" with a label that says what a screen reader would otherwise miss; the
// page shows the same numbers in a table.

const SVG = "http://www.w3.org/2000/svg";
const BAR = 22;
const GAP = 8;
const LABEL_W = 230;
const VALUE_W = 70;
const WIDTH = 640;
const SUMMARISED = 12; // bars named in the label; the table has every one

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function clip(text, max = 30) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** bars: [{label, value}], format(value) → text; title names the chart. */
export function barChart(bars, { title, format }) {
  const height = Math.max(1, bars.length) * (BAR + GAP) + GAP;
  const most = Math.max(0, ...bars.map((b) => b.value));
  const named = bars.slice(0, SUMMARISED).map((b) => `${b.label} ${format(b.value)}`);
  const rest = bars.length > SUMMARISED ? `, and ${bars.length - SUMMARISED} more` : "";
  const summary = bars.length ? `${title}: ${named.join(", ")}${rest}.` : `${title}: no requests.`;
  const chart = svg("svg", {
    class: "bar-chart",
    role: "img",
    "aria-label": summary,
    viewBox: `0 0 ${WIDTH} ${height}`,
    preserveAspectRatio: "xMinYMin meet",
  });
  const room = WIDTH - LABEL_W - VALUE_W;
  bars.forEach((bar, i) => {
    const y = GAP + i * (BAR + GAP);
    const width = most > 0 ? Math.max(bar.value > 0 ? 2 : 0, (bar.value / most) * room) : 0;
    const group = svg("g", { "aria-hidden": "true" });
    group.append(
      svg("text", { x: LABEL_W - 8, y: y + BAR * 0.7, "text-anchor": "end", class: "bar-label" }, clip(bar.label)),
      svg("rect", { x: LABEL_W, y, width, height: BAR, rx: 3, class: "bar" }),
      svg("text", { x: LABEL_W + width + 6, y: y + BAR * 0.7, class: "bar-value" }, format(bar.value)),
    );
    chart.append(group);
  });
  if (!bars.length) {
    chart.append(svg("text", { x: 8, y: height / 2 + 5, class: "bar-label", "aria-hidden": "true" }, "No requests in this window."));
  }
  return chart;
}
