// What the admin sections share: their heading, how a person is named, the list of
// accounts, and a repeating refresh that stops when the person leaves the page.

import { api } from "../api.js";
import { h } from "../dom.js";

/** The section's <h2>, which names the section element (admin.js labels it by this id). */
export function heading(text) {
  return h("h2", { id: "admin-section-title", text });
}

/** How a person is called on these pages: username, else email, else id. */
export function nameOf(user) {
  return user.username || user.email || user.id;
}

/** Every account (pages of 200), oldest first. */
export async function allUsers(signal) {
  const users = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/v1/users?${query}`, { signal });
    users.push(...page.users);
    cursor = page.next_cursor;
  } while (cursor);
  return users;
}

/** user id → name, for tables that show whose a row is; empty when the list fails
 * (ids then stand in for names). */
export async function userNames(signal) {
  try {
    return new Map((await allUsers(signal)).map((user) => [user.id, nameOf(user)]));
  } catch {
    return new Map();
  }
}

/** Run `tick` now and every `ms` until `signal` aborts; one run at a time, and a
 * failed run waits for the next tick rather than stopping the refresh. */
export function every(ms, tick, signal) {
  let timer = null;
  const run = async () => {
    try {
      await tick();
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      console.warn(err);
    }
    if (!signal.aborted) timer = setTimeout(run, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return run();
}

/** A <tr> of cells; text for plain values, nodes as they are. */
export function row(cells, attrs = {}) {
  return h("tr", attrs, cells.map((cell) => h("td", {}, cell ?? "—")));
}

/** True while focus is inside `el`: a refresh that rebuilds it then would steal focus. */
export function holdsFocus(el) {
  return el.contains(document.activeElement);
}
