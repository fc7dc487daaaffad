// An assistant's text as HTML: marked parses it, DOMPurify removes anything that could
// run (script, event handlers, javascript: URLs) before it reaches innerHTML, and
// highlight.js colours the code blocks. A model's answer is untrusted input.

import { marked } from "/ui/static/vendor/marked.esm.js";
import DOMPurify from "/ui/static/vendor/purify.es.mjs";
import hljs from "/ui/static/vendor/highlight.min.js";

hljs.configure({ ignoreUnescapedHTML: true });

// An answer stays inside its message: no <style> or style= that restyles or covers the
// console, no form or buttons that pose as its own, and its ids and names prefixed so
// that they cannot take the page's (toasts find their live regions by id).
const SANITIZE = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "button", "textarea", "select"],
  FORBID_ATTR: ["style"],
  SANITIZE_NAMED_PROPS: true,
};

/** The sanitized HTML of `text` (markdown). */
export function markdownHtml(text) {
  const html = marked.parse(text || "", { gfm: true, breaks: false, async: false });
  return DOMPurify.sanitize(html, SANITIZE);
}

/** Render `text` into `el`: sanitized markdown, highlighted code, and links that open
 * in a new tab without handing the console's window to the page they open. */
export function renderMarkdown(el, text) {
  el.innerHTML = markdownHtml(text);
  for (const code of el.querySelectorAll("pre code")) {
    hljs.highlightElement(code);
  }
  for (const link of el.querySelectorAll("a[href]")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
  for (const pre of el.querySelectorAll("pre")) {
    // A long line scrolls inside its block instead of widening the page; a focusable
    // scroller can be scrolled from the keyboard.
    pre.tabIndex = 0;
  }
  return el;
}
