// models page (placeholder: to be written).
import { h } from "../dom.js";

export async function render(ctx) {
  ctx.main.append(h("h1", { text: "models" }));
}
