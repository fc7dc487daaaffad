// The console shell: a History-API router over /ui/…, the signed-in profile, and
// the navigation. Each page is an ES module under pages/ exporting
//   render(ctx) where ctx = {main, me, params, query, navigate, signal, setTitle, refreshMe}
// `signal` aborts when the person leaves the page: pages stop their streams and
// timers on it.

import { ApiError, api, session } from "./api.js";
import { clear, h, toast } from "./dom.js";

const ROUTES = [
  { pattern: /^\/ui\/?$/, redirect: "/ui/chat" },
  { pattern: /^\/ui\/login$/, page: "login", public: true, title: "Sign in" },
  { pattern: /^\/ui\/setup$/, page: "setup", public: true, title: "Set up Pluggably" },
  { pattern: /^\/ui\/register$/, page: "register", public: true, title: "Create account" },
  { pattern: /^\/ui\/chat(?:\/([^/]+))?$/, page: "chat", nav: "chat", title: "Chat" },
  { pattern: /^\/ui\/models$/, page: "models", nav: "models", title: "Models" },
  { pattern: /^\/ui\/settings$/, page: "settings", nav: "settings", title: "Settings" },
  { pattern: /^\/ui\/admin(?:\/([a-z]+))?$/, page: "admin", nav: "admin", admin: true, title: "Admin" },
];

const state = { me: undefined, controller: null };
const main = document.getElementById("main");

async function loadMe() {
  try {
    state.me = await api("/v1/users/me");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    state.me = null;
  }
  renderChrome();
  return state.me;
}

function renderChrome() {
  const me = state.me;
  document.getElementById("nav").hidden = !me;
  document.querySelector('[data-nav="admin"]').closest("li").hidden = !(me && me.role === "admin");
  const account = clear(document.getElementById("account"));
  if (me) {
    account.append(
      h("span", { class: "who", text: me.display_name || me.username || me.email || "" }),
      h("button", { class: "btn secondary", type: "button", onclick: signOut }, "Sign out"),
    );
  }
}

async function signOut() {
  try {
    await session.signOut();
  } catch (err) {
    toast(err.message, "error");
  }
  state.me = null;
  renderChrome();
  navigate("/ui/login");
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return route();
}

function match(pathname) {
  for (const r of ROUTES) {
    const m = pathname.match(r.pattern);
    if (m) return { route: r, params: m.slice(1).filter((p) => p !== undefined).map(decodeURIComponent) };
  }
  return null;
}

async function route() {
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  const found = match(location.pathname);
  if (found?.route.redirect) return navigate(found.route.redirect, { replace: true });
  try {
    if (state.me === undefined) await loadMe();
  } catch (err) {
    // The server is down or restarting: say so, with a way to try again.
    if (!controller.signal.aborted) showProblem(err);
    return;
  }
  if (controller.signal.aborted) return;
  if (!found) return showNotFound();
  const { route: r, params } = found;
  if (!r.public && !state.me) {
    const next = location.pathname + location.search;
    return navigate("/ui/login?next=" + encodeURIComponent(next), { replace: true });
  }
  if (r.page === "login" && state.me) return navigate("/ui/chat", { replace: true });
  if (r.admin && state.me.role !== "admin") return navigate("/ui/chat", { replace: true });
  markNav(r.nav);
  document.title = `${r.title} · Pluggably`;
  clear(main);
  main.dataset.page = r.page;
  const ctx = {
    main,
    me: state.me,
    params,
    query: new URLSearchParams(location.search),
    navigate,
    signal: controller.signal,
    setTitle: (title) => (document.title = `${title} · Pluggably`),
    refreshMe: loadMe,
  };
  try {
    const module = await import(`./pages/${r.page}.js`);
    if (controller.signal.aborted) return;
    await module.render(ctx);
  } catch (err) {
    if (controller.signal.aborted) return;
    main.append(problem(err));
  }
  // A new page: a keyboard or screen-reader user starts at its content, not at the
  // link they left behind; pages that focus a control of their own keep it.
  if (!controller.signal.aborted && !main.contains(document.activeElement)) {
    main.focus({ preventScroll: true });
  }
}

function markNav(nav) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** What went wrong, in words: a failed fetch (TypeError) is the server out of reach. */
function problem(err) {
  const text =
    err instanceof ApiError
      ? err.message
      : err instanceof TypeError
        ? "The server could not be reached: it may be restarting. Try again in a moment."
        : err?.message || String(err);
  return h(
    "div",
    { class: "form-error", role: "alert" },
    h("p", { text }),
    h("button", { class: "btn secondary", type: "button", onclick: () => route() }, "Try again"),
  );
}

function showProblem(err) {
  markNav(null);
  document.title = "Problem · Pluggably";
  clear(main);
  main.dataset.page = "problem";
  main.append(h("h1", { text: "Pluggably is not answering" }), problem(err));
}

function showNotFound() {
  markNav(null);
  document.title = "Page not found · Pluggably";
  clear(main);
  main.dataset.page = "not-found";
  main.append(
    h("h1", { text: "Page not found" }),
    h("p", {}, "There is no page at ", h("code", { text: location.pathname }), "."),
    h("p", {}, h("a", { href: "/ui/chat", text: "Go to the chat" })),
  );
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/")) return;
  if (url.pathname.startsWith("/ui/static/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);
window.addEventListener("pluggably:unauthorized", () => {
  if (!state.me) return;
  state.me = null;
  renderChrome();
  const r = match(location.pathname)?.route;
  if (r && !r.public) navigate("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
});

route();
