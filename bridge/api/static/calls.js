// The journal list: filters kept in the URL, "Load more" paging, and an incremental refresh.
//
// Paging goes back in started_at order (the API's newest-first order: started_at, then id,
// descending). The next page asks for calls started up to and including the oldest shown
// started_at (started_before = that instant + 1 µs), with a limit raised by the calls already
// shown at exactly that instant, and drops those: ties across a page boundary are neither lost
// nor repeated.
//
// The refresh asks for calls journaled since the greatest id seen (since_id), with the agent and
// date filters but not the status one: a call starts "in-progress", so with a status filter
// ("failed") it is watched until it ends and then shown if it matches. Shown calls still in
// progress are checked against one `status=in-progress` query, and only those that ended are
// re-fetched by id.

import {
  apiUrl,
  el,
  formatDateTime,
  formatSeconds,
  getJSON,
  replaceChildren,
  statusBadge,
  timeElement,
} from "./common.js";

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500; // the API's largest page
const REFRESH_MS = 3000;
const FILTERS = ["agent", "status", "from", "to"];
const ZERO_ID = "0".repeat(26); // since_id before every id: all calls, oldest first

const form = document.getElementById("filters");
const tbody = document.querySelector("#calls tbody");
const caption = document.getElementById("summary");
const announce = document.getElementById("announce");
const errorBox = document.getElementById("error");
const moreButton = document.getElementById("more");
const refreshButton = document.getElementById("refresh");
const autoRefresh = document.getElementById("auto-refresh");
const updated = document.getElementById("updated");

/** Everything about the list on screen; replaced as a whole when the filters change. */
let view = null;
let ticking = null; // the running refresh, if any
let tickAgain = false;

// --- filters ----------------------------------------------------------------------------------

function readFilters(search) {
  const params = new URLSearchParams(search);
  const filters = {};
  for (const name of FILTERS) {
    filters[name] = (params.get(name) || "").trim();
  }
  const limit = Number.parseInt(params.get("limit") || "", 10);
  filters.limit = limit >= 1 ? Math.min(limit, MAX_LIMIT) : DEFAULT_LIMIT;
  filters.explicitLimit = params.has("limit");
  return filters;
}

/** A date input's day (yyyy-mm-dd) at local midnight, `plusDays` later, as an ISO instant. */
function localMidnight(day, plusDays = 0) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) {
    throw new Error(`"${day}" is not a date (yyyy-mm-dd)`);
  }
  const [year, month, date] = match.slice(1).map(Number);
  return new Date(year, month - 1, date + plusDays).toISOString();
}

/** API query parameters for the filters: "to" is inclusive, so it ends at the next midnight. */
function queryOf(filters, { withStatus }) {
  if (filters.from && filters.to && filters.from > filters.to) {
    throw new Error("“Started from” is after “Started to”.");
  }
  return {
    agent: filters.agent,
    status: withStatus ? filters.status : "",
    started_after: filters.from ? localMidnight(filters.from) : "",
    started_before: filters.to ? localMidnight(filters.to, 1) : "",
  };
}

function matchesStatus(call) {
  return !view.filters.status || call.status === view.filters.status;
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((option) => option.value === value)) {
    select.append(el("option", { value }, value));
  }
}

function fillForm(filters) {
  const agent = form.elements.agent;
  if (agent instanceof HTMLSelectElement) {
    ensureOption(agent, filters.agent);
  }
  agent.value = filters.agent;
  ensureOption(form.elements.status, filters.status);
  form.elements.status.value = filters.status;
  form.elements.from.value = filters.from;
  form.elements.to.value = filters.to;
}

/** Swap the agent text box for a list of the configured agents (the box stays if that fails). */
async function loadAgents() {
  let body;
  try {
    body = await getJSON(apiUrl("v1/agents"));
  } catch {
    return;
  }
  const agents = Array.isArray(body.agents) ? body.agents : [];
  const input = form.elements.agent;
  const select = el(
    "select",
    { id: "agent", name: "agent" },
    el("option", { value: "" }, "Any agent"),
    agents
      .filter((agent) => agent && typeof agent.name === "string")
      .map((agent) =>
        el("option", { value: agent.name }, agent.default ? `${agent.name} (default)` : agent.name),
      ),
  );
  ensureOption(select, input.value);
  select.value = input.value;
  input.replaceWith(select);
}

// --- rows -------------------------------------------------------------------------------------

function callLink(call) {
  const href = `call.html?id=${encodeURIComponent(call.id)}`;
  return el("a", { href }, timeElement(call.started_at));
}

function cellsOf(call) {
  const muted = (value) => (value ? value : el("span", { class: "muted" }, "—"));
  return [
    el("td", { class: "nowrap" }, callLink(call)),
    el("td", {}, muted(call.agent)),
    el("td", {}, muted(call.carrier)),
    el("td", {}, statusBadge(call.status)),
    el("td", { class: "num" }, formatSeconds(call.duration_secs)),
    el("td", { class: "nowrap" }, `${call.from_number || "—"} → ${call.to_number || "—"}`),
    el("td", {}, muted(call.end_reason)),
  ];
}

function rowOf(call, fresh) {
  return el("tr", { "data-id": call.id, class: fresh ? "fresh" : null }, cellsOf(call));
}

/** Newest first: started_at, then id (the API's order). */
function newer(a, b) {
  const ta = Date.parse(a.started_at);
  const tb = Date.parse(b.started_at);
  return ta !== tb ? ta > tb : a.id > b.id;
}

function show(call, { fresh = false, atEnd = false } = {}) {
  const row = rowOf(call, fresh);
  if (atEnd) {
    tbody.append(row);
  } else {
    const before = [...tbody.rows].find((shown) => {
      const other = view.rows.get(shown.dataset.id);
      return other && newer(call, other.call);
    });
    tbody.insertBefore(row, before || null);
  }
  view.rows.set(call.id, { call, row });
}

function update(call) {
  const shown = view.rows.get(call.id);
  if (shown) {
    shown.call = call;
    replaceChildren(shown.row, cellsOf(call));
  }
}

/** Put `call` in the list if it belongs there; true if it was added. */
function offer(call) {
  if (view.rows.has(call.id) || !matchesStatus(call)) {
    return false;
  }
  // Older than the paging cursor with pages left: "Load more" will bring it in its place.
  const oldest = view.pageCursor && { started_at: view.pageCursor, id: "" };
  if (view.hasMore && oldest && !newer(call, oldest)) {
    return false;
  }
  show(call, { fresh: true });
  return true;
}

function renderSummary() {
  tbody.querySelector("tr.empty")?.remove();
  const count = view.rows.size;
  if (!count) {
    tbody.append(
      el("tr", { class: "empty" }, el("td", { colspan: 7 }, "No calls match these filters.")),
    );
  }
  const filtered = FILTERS.filter((name) => view.filters[name]).length;
  const what = count === 1 ? "1 call" : `${count} calls`;
  caption.textContent = `${what}${filtered ? " matching the filters" : ""}, newest first.`;
  moreButton.hidden = !view.hasMore;
}

function showError(message) {
  errorBox.textContent = message;
}

// --- loading ----------------------------------------------------------------------------------

/** The instant 1 µs after `iso` (the API's own text, so no precision is lost). */
function afterMicrosecond(iso) {
  const match = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})$/.exec(iso);
  if (!match) {
    return new Date(Date.parse(iso) + 1).toISOString();
  }
  const [, head, fraction = "", zone] = match;
  const micros = Number((fraction + "000000").slice(0, 6)) + 1;
  if (micros < 1_000_000) {
    return `${head}.${String(micros).padStart(6, "0")}${zone}`;
  }
  return new Date(Date.parse(`${head}${zone}`) + 1000).toISOString(); // .000Z: microsecond 0
}

async function load() {
  const filters = readFilters(location.search);
  fillForm(filters);
  view = {
    filters,
    loaded: false,
    rows: new Map(),
    sinceId: null, // the greatest id seen, for since_id
    pageCursor: null, // started_at of the oldest call the pages brought
    hasMore: false,
    watch: new Set(), // calls in progress that do not match the status filter (yet)
  };
  const current = view;
  replaceChildren(tbody);
  caption.textContent = "Loading calls…";
  moreButton.hidden = true;
  announce.textContent = "";
  showError("");
  let body;
  let newest = null;
  try {
    const query = queryOf(filters, { withStatus: true });
    const page = getJSON(apiUrl("v1/calls", { ...query, limit: filters.limit }));
    // With a status filter the page's greatest id may be old: start the refresh from the
    // newest call of any status, or it would bring every call since then.
    const latest = filters.status
      ? getJSON(apiUrl("v1/calls", { ...query, status: "", limit: 1 }))
      : null;
    [body, newest] = await Promise.all([page, latest]);
  } catch (error) {
    if (view === current) {
      caption.textContent = "No calls loaded.";
      showError(`Could not load calls: ${error.message}`);
    }
    return;
  }
  if (view !== current) {
    return;
  }
  for (const call of body.calls) {
    show(call, { atEnd: true });
  }
  view.sinceId = body.next_since_id;
  advance(view, newest && newest.next_since_id);
  view.pageCursor = body.calls.length ? body.calls.at(-1).started_at : null;
  view.hasMore = body.calls.length === filters.limit;
  view.loaded = true;
  renderSummary();
  stamp();
  await tick(current); // watch the calls in progress at once
}

function advance(current, id) {
  if (id && (!current.sinceId || id > current.sinceId)) {
    current.sinceId = id;
  }
}

async function loadMore() {
  const current = view;
  if (!current.pageCursor) {
    return;
  }
  const ties = [...current.rows.values()].filter(
    (shown) => shown.call.started_at === current.pageCursor,
  ).length;
  const limit = Math.min(current.filters.limit + ties, MAX_LIMIT);
  moreButton.disabled = true;
  try {
    const query = queryOf(current.filters, { withStatus: true });
    query.started_before = afterMicrosecond(current.pageCursor);
    const body = await getJSON(apiUrl("v1/calls", { ...query, limit }));
    if (view !== current) {
      return;
    }
    let added = 0;
    for (const call of body.calls) {
      if (!current.rows.has(call.id)) {
        show(call, { atEnd: true });
        added += 1;
      }
    }
    if (body.calls.length) {
      current.pageCursor = body.calls.at(-1).started_at;
    }
    current.hasMore = body.calls.length === limit;
    advance(current, body.next_since_id);
    showError("");
    renderSummary();
    announce.textContent = added === 1 ? "1 older call loaded." : `${added} older calls loaded.`;
  } catch (error) {
    if (view === current) {
      showError(`Could not load more calls: ${error.message}`);
    }
  } finally {
    moreButton.disabled = false;
  }
}

// --- incremental refresh ------------------------------------------------------------------------

async function newCalls(current) {
  const query = queryOf(current.filters, { withStatus: false });
  let added = 0;
  for (;;) {
    const params = { ...query, since_id: current.sinceId || ZERO_ID, limit: MAX_LIMIT };
    const body = await getJSON(apiUrl("v1/calls", params));
    if (view !== current) {
      return 0;
    }
    for (const call of body.calls) {
      if (offer(call)) {
        added += 1;
      } else if (call.status === "in-progress" && !current.rows.has(call.id)) {
        current.watch.add(call.id);
      }
    }
    advance(current, body.next_since_id);
    if (body.calls.length < MAX_LIMIT) {
      return added;
    }
  }
}

async function endedCalls(current) {
  const shownLive = [...current.rows.values()]
    .filter((shown) => shown.call.status === "in-progress")
    .map((shown) => shown.call.id);
  const statusFiltered = current.filters.status && current.filters.status !== "in-progress";
  if (!shownLive.length && !current.watch.size && !statusFiltered) {
    return 0;
  }
  const query = queryOf(current.filters, { withStatus: false });
  query.status = "in-progress";
  const body = await getJSON(apiUrl("v1/calls", { ...query, limit: MAX_LIMIT }));
  if (view !== current) {
    return 0;
  }
  const live = new Set(body.calls.map((call) => call.id));
  if (statusFiltered) {
    for (const id of live) {
      if (!current.rows.has(id)) {
        current.watch.add(id); // started before the page loaded, may still match
      }
    }
  }
  let added = 0;
  const ended = [...shownLive, ...current.watch].filter((id) => !live.has(id));
  for (const id of ended) {
    let call;
    try {
      call = await getJSON(apiUrl(`v1/calls/${encodeURIComponent(id)}`));
    } catch (error) {
      if (error.status === 404) {
        current.watch.delete(id);
        continue;
      }
      throw error;
    }
    if (view !== current) {
      return 0;
    }
    if (current.rows.has(id)) {
      update(call);
    } else if (call.status !== "in-progress") {
      current.watch.delete(id);
      added += offer(call) ? 1 : 0;
    }
  }
  return added;
}

function stamp() {
  updated.textContent = `Updated ${formatDateTime(new Date().toISOString())}`;
}

/** One refresh of the view `current`: new calls, then the calls in progress that ended. */
async function tick(current) {
  try {
    const added = (await newCalls(current)) + (await endedCalls(current));
    if (view !== current) {
      return;
    }
    showError("");
    renderSummary();
    stamp();
    if (added) {
      announce.textContent = added === 1 ? "1 new call" : `${added} new calls`;
    }
  } catch (error) {
    if (view === current) {
      showError(`Refresh failed: ${error.message}`);
    }
  }
}

/** Refresh the list (or load it, if that failed); a request during a refresh runs once more. */
async function refresh() {
  if (ticking) {
    tickAgain = true;
    return ticking;
  }
  ticking = (async () => {
    do {
      tickAgain = false;
      if (view.loaded) {
        await tick(view);
      } else {
        await load();
      }
    } while (tickAgain);
  })();
  try {
    await ticking;
  } finally {
    ticking = null;
  }
}

function schedule() {
  setTimeout(async () => {
    if (autoRefresh.checked && !document.hidden && view) {
      await refresh();
    }
    schedule();
  }, REFRESH_MS);
}

// --- wiring -----------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = String(form.elements[name].value || "").trim();
    if (value) {
      params.set(name, value);
    }
  }
  const filters = readFilters(location.search);
  if (filters.explicitLimit) {
    params.set("limit", String(filters.limit));
  }
  const search = params.toString();
  history.pushState(null, "", search ? `calls.html?${search}` : "calls.html");
  load();
});

document.getElementById("reset").addEventListener("click", (event) => {
  event.preventDefault();
  history.pushState(null, "", "calls.html");
  load();
});

window.addEventListener("popstate", () => load());
moreButton.addEventListener("click", () => loadMore());
refreshButton.addEventListener("click", () => refresh());

await loadAgents();
await load();
schedule();
