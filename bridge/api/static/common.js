// Helpers shared by the console pages: API access, formatting, a DOM builder, status badges.
//
// Journal text is caller speech and carrier data: it only ever reaches the page as text nodes
// (el() never parses HTML), so "<img onerror=…>" in a transcript stays text.

/** The server's root, from where this module is served (/console/common.js → /). */
const ROOT = new URL("../", import.meta.url);

/** Statuses with a badge colour of their own; any other status gets the neutral badge. */
export const STATUSES = ["in-progress", "completed", "failed", "rejected"];

/** An API URL: `path` relative to the server root, with the non-empty `params`. */
export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), ROOT);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(key, String(value));
    }
  }
  return url;
}

const KEY_STORAGE = "callbridge.apiKey";

/** The API key the console calls with (kept in this browser's localStorage), or "". */
export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

/** Headers that authenticate a request with the stored API key. */
export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/**
 * Ask for an API key (a form at the top of the page). Shown when there is none, or when the
 * server refused the stored one; saving it reloads the page.
 */
export function askForKey(message) {
  if (document.getElementById("api-key-form")) {
    return;
  }
  const input = el("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "cb_…",
    required: true,
  });
  const form = el(
    "form",
    { id: "api-key-form", class: "key-form", "aria-labelledby": "api-key-title" },
    el("p", { id: "api-key-title" }, message),
    el("label", { for: "api-key" }, "API key"),
    " ",
    input,
    " ",
    el("button", { type: "submit" }, "Use this key"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      localStorage.setItem(KEY_STORAGE, input.value.trim());
    } catch {
      // storage refused (private mode): the key lasts for this page only
    }
    location.reload();
  });
  const main = document.querySelector("main") || document.body;
  main.prepend(form);
  input.focus();
}

function refused(status) {
  if (status === 401) {
    askForKey(
      apiKey()
        ? "The server refused the stored API key. Enter another one."
        : "This console needs an API key (callbridge keys create, or the key the server logged at its first start).",
    );
  }
}

/** The API's error message: `{"detail": "…"}`, or FastAPI's list of validation errors. */
function detailOf(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string" && detail) {
    return detail;
  }
  if (Array.isArray(detail) && detail.length) {
    return detail.map((item) => (item && item.msg) || JSON.stringify(item)).join("; ");
  }
  return `the server answered HTTP ${status}`;
}

/** GET `url` as JSON. Throws an Error (with `.status`, 0 if unreachable) on failure. */
export async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json", ...authHeaders() } });
  } catch (cause) {
    const error = new Error("cannot reach the server", { cause });
    error.status = 0;
    throw error;
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    refused(response.status);
    const error = new Error(detailOf(body, response.status));
    error.status = response.status;
    throw error;
  }
  if (body === null) {
    const error = new Error("the server answered with no JSON");
    error.status = response.status;
    throw error;
  }
  return body;
}

/** POST `body` as JSON to `url`; the parsed answer. Throws like getJSON. */
export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders() },
    body: JSON.stringify(body),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    refused(response.status);
    const error = new Error(detailOf(answer, response.status));
    error.status = response.status;
    throw error;
  }
  return answer;
}

/**
 * Server-Sent Events over fetch, so the request carries the API key (EventSource cannot send
 * headers). The same surface as EventSource: addEventListener(type, fn) with `{data}`, close(),
 * readyState, onerror. It never reconnects: the caller decides what to do after "error", which
 * is also what an ended stream reports.
 */
export class EventStream {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url) {
    this.readyState = EventStream.CONNECTING;
    this.onerror = null;
    this.listeners = new Map();
    this.controller = new AbortController();
    this.run(url);
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) {
      this.listeners.set(type, []);
    }
    this.listeners.get(type).push(listener);
  }

  close() {
    this.readyState = EventStream.CLOSED;
    this.controller.abort();
  }

  emit(type, event) {
    for (const listener of this.listeners.get(type) || []) {
      listener(event);
    }
  }

  async run(url) {
    try {
      const response = await fetch(url, {
        headers: { Accept: "text/event-stream", ...authHeaders() },
        signal: this.controller.signal,
      });
      if (!response.ok || !response.body) {
        refused(response.status);
        throw new Error(`HTTP ${response.status}`);
      }
      this.readyState = EventStream.OPEN;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        buffer += value;
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // aborted by close(), or the connection failed: both end below
    }
    if (this.readyState !== EventStream.CLOSED) {
      this.readyState = EventStream.CLOSED;
      const event = { type: "error" };
      this.emit("error", event);
      if (this.onerror) {
        this.onerror(event);
      }
    }
  }

  dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) {
        type = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
    if (data.length && this.readyState !== EventStream.CLOSED) {
      this.emit(type, { type, data: data.join("\n") });
    }
  }
}

/** Seconds as [h:]m:ss.t, e.g. 65.3 → "1:05.3"; "—" when unknown. */
export function formatSeconds(secs) {
  if (typeof secs !== "number" || !Number.isFinite(secs)) {
    return "—";
  }
  const sign = secs < 0 ? "-" : "";
  const tenths = Math.round(Math.abs(secs) * 10); // round first: 59.96 is 1:00.0, not 0:60.0
  const hours = Math.floor(tenths / 36000);
  const minutes = Math.floor((tenths % 36000) / 600);
  const seconds = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  return hours
    ? `${sign}${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
    : `${sign}${minutes}:${seconds}`;
}

const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** An ISO 8601 instant in the browser's time zone, e.g. "Nov 21, 2026, 02:19:05 PM". */
export function formatDateTime(iso) {
  if (!iso) {
    return "—";
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

/** A `<time>` element for an ISO instant (machine-readable datetime, readable text). */
export function timeElement(iso) {
  return iso ? el("time", { datetime: iso }, formatDateTime(iso)) : "—";
}

/** A `<time>` element for seconds into the call (datetime as an ISO 8601 duration). */
export function offsetElement(secs) {
  const datetime = Number.isFinite(secs) ? `PT${Math.max(0, secs).toFixed(3)}S` : null;
  return el("time", { datetime, class: "offset" }, formatSeconds(secs));
}

/**
 * Build an element. `attrs`: `class`, event handlers as functions (`onclick`), `true` for an
 * empty attribute; `null`, `undefined` and `false` leave the attribute out; anything else is set
 * as an attribute string. Children: nodes, strings (as text, never HTML), arrays; null is skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(node, child);
    } else if (child instanceof Node) {
      node.append(child);
    } else {
      node.append(document.createTextNode(String(child)));
    }
  }
}

/** A status badge: coloured for the known statuses, neutral for any other. */
export function statusBadge(status) {
  const text = status || "unknown";
  const known = STATUSES.includes(text) ? `badge-${text}` : null;
  return el("span", { class: ["badge", known], "data-status": text }, text);
}

/** Replace the children of `node` with `children` (same rules as el()). */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A JSON value as text for display: strings as they are, everything else as JSON. */
export function displayValue(value) {
  if (typeof value === "string") {
    return value;
  }
  if (value === undefined) {
    return "";
  }
  return JSON.stringify(value);
}
