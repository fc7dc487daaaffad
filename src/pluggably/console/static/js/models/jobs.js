// Download jobs (admin): a card per job with a progress bar, followed live through
// GET /v1/jobs/{id}/events, and a Cancel button. The stream answers once and ends
// when the job is not running on the replica that answered, so a job still going
// is read again and its stream reopened until it ends.

import { ApiError, api, sse } from "../api.js";
import { button, errorBox, formatBytes, h, sleep, uid } from "../dom.js";
import { TERMINAL, formatDuration, isAborted } from "./common.js";

const SHOWN_AT_OPEN = 20;
const RETRY_MS = 1000;
// The progress text is a live region: at most one update a second is announced,
// besides every change of status.
const ANNOUNCE_MS = 1000;

function describe(job) {
  switch (job.status) {
    case "queued":
      return "Waiting to start…";
    case "completed":
      return `Downloaded ${formatBytes(job.bytes_total ?? job.bytes_done)}.`;
    case "cancelled":
      return "Cancelled.";
    case "failed":
      return `Failed: ${job.error || "the download stopped."}`;
    default: {
      const parts = [];
      if (job.bytes_total) parts.push(`${Math.floor(job.progress_pct)}%`);
      const total = job.bytes_total ? ` of ${formatBytes(job.bytes_total)}` : "";
      parts.push(`${formatBytes(job.bytes_done)}${total}`);
      if (job.speed_bps) parts.push(`${formatBytes(job.speed_bps)}/s`);
      if (job.eta_s !== null && job.eta_s !== undefined) parts.push(`about ${formatDuration(job.eta_s)} left`);
      return parts.join(" · ");
    }
  }
}

function jobCard(job, onCancel) {
  const title = uid("job");
  const progress = h("progress", { max: "100", "aria-label": `Download progress for ${job.model_id}` });
  const status = h("div", { class: "job-status", role: "status" });
  const cancel = button("Cancel", () => onCancel(card), { kind: "danger", label: `Cancel download of ${job.model_id}` });
  const errors = errorBox();
  const el = h(
    "article",
    { class: "card job", "aria-labelledby": title, dataset: { jobId: job.job_id } },
    // tabindex -1: the focus lands here when the Cancel button it was on goes away.
    h("h4", { id: title, class: "job-title", tabindex: "-1", text: job.model_id }),
    progress,
    status,
    errors,
    h("div", { class: "actions" }, cancel),
  );
  const card = { el, job, following: false, errors, spoken: 0 };
  card.update = (next) => {
    const changed = next.status !== card.job.status;
    card.job = next;
    if (next.status === "running" && !next.bytes_total) progress.removeAttribute("value");
    else if (next.status === "queued") progress.removeAttribute("value");
    else progress.value = next.status === "completed" ? 100 : next.progress_pct;
    el.dataset.status = next.status;
    cancel.hidden = TERMINAL.has(next.status);
    const now = Date.now();
    if (changed || !status.textContent || now - card.spoken >= ANNOUNCE_MS || TERMINAL.has(next.status)) {
      status.textContent = describe(next);
      card.spoken = now;
    }
  };
  card.job = { ...job, status: null }; // the first update counts as a change
  card.update(job);
  return card;
}

export function createJobs(ctx, { onCompleted }) {
  const heading = uid("jobs");
  const list = h("div", { class: "job-list" });
  const empty = h("p", { class: "muted", text: "No downloads yet." });
  const errors = errorBox();
  const section = h(
    "section",
    { class: "jobs", "aria-labelledby": heading },
    h("h3", { id: heading, text: "Downloads" }),
    errors,
    empty,
    list,
  );
  const cards = new Map();

  /** Shows a job (newest first) and follows it while it runs. */
  function add(job, { atEnd = false } = {}) {
    let card = cards.get(job.job_id);
    if (card) {
      card.update(job);
    } else {
      card = jobCard(job, cancel);
      cards.set(job.job_id, card);
      if (atEnd) list.append(card.el);
      else list.prepend(card.el);
      empty.hidden = true;
    }
    if (!TERMINAL.has(card.job.status) && !card.following) follow(card);
    return card;
  }

  async function follow(card) {
    card.following = true;
    const id = encodeURIComponent(card.job.job_id);
    while (!ctx.signal.aborted && !TERMINAL.has(card.job.status)) {
      try {
        for await (const frame of sse(`/v1/jobs/${id}/events`, { signal: ctx.signal })) {
          if (frame.event === "error") throw new Error(frame.message);
          card.update(frame);
        }
        if (!TERMINAL.has(card.job.status)) card.update(await api(`/v1/jobs/${id}`, { signal: ctx.signal }));
        card.errors.show(null);
      } catch (err) {
        if (isAborted(ctx.signal, err)) return;
        card.errors.show(err);
        if (err instanceof ApiError && err.status === 404) return;
      }
      if (!TERMINAL.has(card.job.status)) await sleep(RETRY_MS, ctx.signal);
    }
    card.following = false;
    if (card.job.status === "completed" && !ctx.signal.aborted) onCompleted(card.job);
  }

  async function cancel(card) {
    const hadFocus = card.el.contains(document.activeElement);
    try {
      card.update(await api(`/v1/jobs/${encodeURIComponent(card.job.job_id)}`, { method: "DELETE", signal: ctx.signal }));
      card.errors.show(null);
      if (hadFocus && TERMINAL.has(card.job.status)) card.el.querySelector(".job-title").focus(); // Cancel is gone
    } catch (err) {
      if (!isAborted(ctx.signal, err)) card.errors.show(err);
    }
  }

  async function loadExisting() {
    try {
      const { jobs } = await api(`/v1/jobs?limit=${SHOWN_AT_OPEN}`, { signal: ctx.signal });
      for (const job of jobs) add(job, { atEnd: true }); // the server lists newest first
    } catch (err) {
      if (!isAborted(ctx.signal, err)) errors.show(err);
    }
  }

  return { section, add, loadExisting };
}
