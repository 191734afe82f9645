// One call of the journal (call.html?id=<call id>): summary, context, transcript, events, tool
// calls, and the recording when the API gives one.
//
// A call still in progress is followed live: Server-Sent Events from /v1/calls/{id}/live append
// turns, events and tool calls as they come (the stream replays the call from its start, so rows
// already shown are skipped), and the final status re-fetches the whole call. If the stream
// fails, the page re-fetches the call every 3 s until it ends.

import {
  apiUrl,
  EventStream,
  displayValue,
  el,
  formatSeconds,
  getJSON,
  offsetElement,
  replaceChildren,
  statusBadge,
  timeElement,
} from "./common.js";

const POLL_MS = 3000;
const SETTLE_MS = 500; // the journal's write trails the live stream by its batch linger

const $ = (id) => document.getElementById(id);
const callId = (new URLSearchParams(location.search).get("id") || "").trim();

const seen = { turns: new Set(), events: new Set(), tools: new Set() };
let shownJSON = null; // the last rendered response, to skip identical re-renders
let endedLive = null; // the final status the live stream announced, before the journal has it

// --- pieces -----------------------------------------------------------------------------------

const ROLE_LABELS = { user: "Caller", agent: "Agent" };

function fact(label, value) {
  const shown = value === null || value === undefined || value === "" ? "—" : value;
  return el("div", {}, el("dt", {}, label), el("dd", {}, shown));
}

function milliseconds(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    return "—";
  }
  if (ms >= 1000) {
    return `${(ms / 1000).toFixed(2)} s`;
  }
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** Event data as key=value pairs, e.g. "latency_ms=3.2 message=…". */
function summary(data) {
  const entries = Object.entries(data || {});
  if (!entries.length) {
    return el("span", { class: "muted" }, "—");
  }
  const pairs = entries.map(([key, value]) => el("span", {}, `${key}=${displayValue(value)}`));
  return el("span", { class: "kv" }, pairs.flatMap((pair, i) => (i ? [" ", pair] : [pair])));
}

/** Text that is JSON is shown indented; anything else as it is. */
function pretty(text) {
  if (typeof text !== "string") {
    return JSON.stringify(text, null, 2);
  }
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? JSON.stringify(value, null, 2) : text;
  } catch {
    return text;
  }
}

function turnItem(turn) {
  const role = String(turn.role || "");
  return el(
    "li",
    {
      class: ["turn", `turn-${role.replace(/[^a-z0-9_-]/gi, "")}`, turn.interrupted && "interrupted"],
    },
    el(
      "div",
      { class: "turn-meta" },
      el("span", { class: "turn-role" }, ROLE_LABELS[role] || role || "Unknown"),
      offsetElement(turn.time_in_call_secs),
      turn.interrupted ? el("span", { class: "interrupted-mark" }, "interrupted") : null,
    ),
    el("p", { class: "turn-text" }, turn.text),
  );
}

function eventRow(event) {
  return el(
    "tr",
    {},
    el("td", { class: "num" }, offsetElement(event.time_in_call_secs)),
    el("td", {}, el("code", {}, event.kind)),
    el("td", {}, summary(event.data)),
  );
}

function toolItem(tool) {
  const result = tool.ok
    ? el("span", { class: "badge badge-ok" }, "ok")
    : el("span", { class: "badge badge-failed" }, "failed");
  return el(
    "li",
    { class: "tool-call" },
    el("h3", {}, el("span", {}, tool.name), result),
    el(
      "p",
      { class: "muted" },
      "at ",
      offsetElement(tool.time_in_call_secs),
      ` · took ${milliseconds(tool.duration_ms)}`,
      tool.tool_call_id ? ` · id ${tool.tool_call_id}` : "",
    ),
    el(
      "dl",
      { class: "pairs" },
      el("dt", {}, "Arguments"),
      el("dd", {}, el("pre", {}, JSON.stringify(tool.arguments ?? {}, null, 2))),
      el("dt", {}, "Output"),
      el("dd", {}, el("pre", {}, pretty(tool.output))),
    ),
  );
}

/** JSON with object keys sorted (PostgreSQL's JSONB does not keep the order they came in). */
function stable(value) {
  if (Array.isArray(value)) {
    return `[${value.map(stable).join(",")}]`;
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${stable(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** What makes a row the same in the journal's answer and on the live stream. */
const keys = {
  turns: (t) => stable([t.role, t.time_in_call_secs, t.text, Boolean(t.interrupted)]),
  events: (e) => stable([e.kind, e.time_in_call_secs, e.data]),
  tools: (c) => JSON.stringify([c.tool_call_id, c.name, c.time_in_call_secs]),
};

const lists = {
  turns: { node: () => $("transcript"), item: turnItem, empty: "transcript-empty" },
  events: { node: () => $("events").tBodies[0], item: eventRow, empty: "events-empty" },
  tools: { node: () => $("tools"), item: toolItem, empty: "tools-empty" },
};

/** Append rows not shown yet; returns how many were added. */
function add(kind, items) {
  const { node, item, empty } = lists[kind];
  let added = 0;
  for (const entry of items) {
    const key = keys[kind](entry);
    if (!seen[kind].has(key)) {
      seen[kind].add(key);
      node().append(item(entry));
      added += 1;
    }
  }
  $(empty).hidden = seen[kind].size > 0;
  if (kind === "events") {
    $("events").hidden = seen.events.size === 0;
  }
  return added;
}

function safeMediaUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function renderRecording(call) {
  const src = "recording_url" in call && call.recording_url ? safeMediaUrl(call.recording_url) : null;
  $("recording-panel").hidden = !src;
  if (src && $("recording").querySelector("audio")?.getAttribute("src") !== src) {
    replaceChildren(
      $("recording"),
      el("audio", { controls: true, preload: "none", src, "aria-labelledby": "recording-title" }),
      el("p", {}, el("a", { href: src, download: true }, "Download the recording")),
    );
  }
}

function setStatus(status) {
  replaceChildren($("status"), statusBadge(status));
}

function render(call) {
  document.title = `Call ${call.id} · callbridge console`;
  $("title").textContent = call.from_number ? `Call from ${call.from_number}` : "Call";
  $("call-id").textContent = call.id;
  setStatus(endedLive && call.status === "in-progress" ? endedLive : call.status);
  replaceChildren(
    $("facts"),
    fact("Agent", call.agent),
    fact("Carrier", call.carrier),
    fact("From", call.from_number),
    fact("To", call.to_number),
    fact("Started", timeElement(call.started_at)),
    fact("Ended", call.ended_at ? timeElement(call.ended_at) : null),
    fact("Duration", formatSeconds(call.duration_secs)),
    fact("End reason", call.end_reason),
    fact("Call SID", call.call_sid),
    fact("Stream SID", call.stream_sid),
  );
  const context = Object.entries(call.context || {});
  replaceChildren(
    $("context"),
    context.length
      ? el(
          "dl",
          { class: "pairs" },
          context.map(([key, value]) => [el("dt", {}, key), el("dd", {}, displayValue(value))]),
        )
      : el("p", { class: "muted" }, "No context variables."),
  );
  renderRecording(call);
  // Journal rows are only ever appended: a re-fetch adds the new ones, so the (live) transcript
  // announces those alone and nothing under the reader's focus is replaced.
  add("turns", call.transcript || []);
  add("events", call.events || []);
  add("tools", call.tool_calls || []);
  $("loading").hidden = true;
  $("call").hidden = false;
}

function fail(message) {
  $("loading").hidden = true;
  $("error").textContent = message;
}

// --- loading and following ------------------------------------------------------------------

async function fetchCall() {
  return getJSON(apiUrl(`v1/calls/${encodeURIComponent(callId)}`));
}

/** Fetch and show the call; the response, or null if it could not be fetched. */
async function refresh() {
  let call;
  try {
    call = await fetchCall();
  } catch (error) {
    if (error.status === 404) {
      $("call").hidden = true;
      fail(`No call with the id “${callId}” is in the journal.`);
    } else {
      $("error").textContent = `Could not load the call: ${error.message}`;
      $("loading").hidden = true;
    }
    return null;
  }
  $("error").textContent = "";
  const json = JSON.stringify(call);
  if (json !== shownJSON) {
    shownJSON = json;
    render(call);
  }
  return call;
}

function following(live) {
  $("transcript").setAttribute("aria-live", live ? "polite" : "off");
  $("live").textContent = live ? "Live call: new turns appear as they happen." : "";
}

function ended(call) {
  following(false);
  $("live").textContent = `The call ended: ${call.status}.`;
}

/** Re-fetch every `delay` ms until the journal says the call ended. */
function poll(delay = POLL_MS) {
  setTimeout(async () => {
    const call = await refresh();
    if (call && call.status !== "in-progress") {
      ended(call);
    } else if (call || !$("call").hidden) {
      poll(endedLive ? SETTLE_MS * 2 : POLL_MS);
    }
  }, delay);
}

function followLive() {
  if (!("ReadableStream" in window) || !("TextDecoderStream" in window)) {
    poll();
    return;
  }
  const source = new EventStream(apiUrl(`v1/calls/${encodeURIComponent(callId)}/live`));
  const on = (type, handle) =>
    source.addEventListener(type, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      handle(data);
    });
  on("turn", (turn) => add("turns", [turn]));
  on("event", (event) => add("events", [event]));
  on("tool_call", (tool) => add("tools", [tool]));
  on("status", (update) => {
    if (!update.status || update.status === "in-progress") {
      return;
    }
    source.close();
    endedLive = update.status;
    setStatus(update.status);
    poll(SETTLE_MS); // the whole call, once the journal has written its end
  });
  on("overflow", () => {
    source.close();
    poll(0);
  });
  // A failed or ended stream: no reconnecting, re-fetch until the journal says the call ended.
  source.addEventListener("error", () => {
    source.close();
    if (!endedLive) {
      poll();
    }
  });
}

if (!callId) {
  fail("No call id given: open a call from the calls list (this page needs call.html?id=…).");
} else {
  const call = await refresh();
  if (call && call.status === "in-progress") {
    following(true);
    followLive();
  }
}
