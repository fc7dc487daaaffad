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
  if (!found) return navigate("/ui/chat", { replace: true });
  const { route: r, params } = found;
  if (r.redirect) return navigate(r.redirect, { replace: true });
  if (state.me === undefined) await loadMe();
  if (!r.public && !state.me) {
    const next = location.pathname + location.search;
    return navigate("/ui/login?next=" + encodeURIComponent(next), { replace: true });
  }
  if (r.page === "login" && state.me) return navigate("/ui/chat", { replace: true });
  if (r.admin && state.me.role !== "admin") return navigate("/ui/chat", { replace: true });
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === r.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${r.title} · Pluggably`;
  clear(main);
  main.dataset.page = r.page;
  const module = await import(`./pages/${r.page}.js`);
  if (controller.signal.aborted) return;
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
    await module.render(ctx);
  } catch (err) {
    if (controller.signal.aborted) return;
    main.append(h("p", { class: "form-error", role: "alert", text: err.message }));
  }
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
  if (r && !r.public) navigate("/ui/login?next=" + encodeURIComponent(location.pathname));
});

route();
