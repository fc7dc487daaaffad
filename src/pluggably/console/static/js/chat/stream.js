// One answer as it arrives: the native stream's frames (API.md §3 Streaming) drawn
// into an AnswerView, or a JSON answer (image and 3D models answer whole, and
// `stream` is ignored for them). Stopping: POST …/cancel once the request has an id,
// else the fetch is aborted (a disconnect cancels it too).

import { ApiError, api, sse } from "../api.js";

/** A turn in flight. `run()` resolves with {requestId, finishReason, error}. */
export class Turn {
  constructor({ path, body, view, status, signal, streamed }) {
    Object.assign(this, { path, body, view, status, streamed });
    this.controller = new AbortController();
    this.requestId = null;
    this.finishReason = null;
    this.error = null;
    this.stopped = false;
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
  }

  async run() {
    try {
      if (this.streamed) await this.readStream();
      else this.showJson(await api(this.path, { method: "POST", body: { ...this.body, stream: false, wait: true }, signal: this.controller.signal }));
    } catch (err) {
      if (this.stopped || err.name === "AbortError") this.finishReason = "cancelled";
      else this.error = err;
    }
    this.settle();
    return this;
  }

  async readStream() {
    let json = null;
    const frames = sse(this.path, {
      body: { ...this.body, stream: true },
      signal: this.controller.signal,
      onOpen: (response) => {
        // Not a stream after all (a model that answers whole): read it as JSON.
        const type = response.headers.get("content-type") || "";
        if (!type.includes("event-stream")) json = response.clone().json();
      },
    });
    for await (const frame of frames) this.onFrame(frame);
    if (json) this.showJson(await json);
  }

  onFrame(frame) {
    const delta = frame.choices?.[0]?.delta;
    if (delta) {
      if (delta.content) this.view.appendText(delta.content);
      if (delta.reasoning) this.view.appendReasoning(delta.reasoning);
      for (const call of delta.tool_calls || []) this.view.appendToolCall(call);
      return;
    }
    if (frame.request_id) this.setRequestId(frame.request_id);
    switch (frame.event) {
      case "queued":
        this.status(`Waiting for the model — position ${frame.queue_position}`);
        break;
      case "loading":
        this.status(`Loading ${frame.model}…`);
        break;
      case "model_selected":
        this.view.setModel(frame.model);
        this.status(`Answering with ${frame.model}…`);
        break;
      case "complete":
        this.finishReason = frame.finish_reason;
        this.view.showFooter(frame.usage, frame.finish_reason);
        this.view.showMedia(frame.output?.artifacts || [], frame.output?.images || [], frame.output?.mesh);
        break;
      case "error":
        if (frame.code === "cancelled") this.finishReason = "cancelled";
        else this.error = new ApiError(0, frame);
        break;
      default:
        break;
    }
  }

  showJson(answer) {
    if (answer.request_id) this.setRequestId(answer.request_id);
    this.view.setModel(answer.model);
    const output = answer.output || {};
    if (output.text) this.view.appendText(output.text);
    if (output.reasoning) this.view.appendReasoning(output.reasoning);
    (output.tool_calls || []).forEach((c, index) => this.view.appendToolCall({ index, function: c.function }));
    this.view.showMedia(output.artifacts || [], output.images || [], output.mesh);
    this.view.showFooter(answer.usage, answer.finish_reason);
    this.finishReason = answer.finish_reason;
  }

  setRequestId(id) {
    this.requestId = id;
    this.view.el.dataset.requestId = id;
  }

  /** Stop the answer; what was written so far stays. */
  async stop() {
    this.stopped = true;
    if (!this.requestId) {
      this.controller.abort();
      return;
    }
    try {
      await api(`/v1/requests/${encodeURIComponent(this.requestId)}/cancel`, { method: "POST" });
    } catch {
      this.controller.abort(); // the cancel failed: leaving the stream cancels it too
    }
  }

  settle() {
    this.view.render();
    if (this.error) {
      this.view.showNote(this.error.message, "error");
      this.status(`The answer failed: ${this.error.message}`);
    } else if (this.finishReason === "cancelled") {
      this.view.showNote("Stopped.", "stopped");
      this.status("Stopped.");
    } else {
      this.status("Answer complete.");
    }
  }
}
