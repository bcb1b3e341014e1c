// The wrkr dashboard: plain JavaScript over the HTTP API v1, no build step, no CDN.
// Every value from the API reaches the page as text (textContent), never as markup.
"use strict";

const STATES = ["scheduled", "ready", "processing", "done", "failed"];
const PENDING = ["scheduled", "ready"];
const REFRESH_MS = 3000;
const TOKEN_KEY = "wrkr.token";

const live = { paused: false, timer: null, render: null };

// -- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers, credentials: "omit" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

// -- building the page -----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function mount(templateId) {
  const view = document.getElementById("view");
  view.replaceChildren(document.getElementById(templateId).content.cloneNode(true));
  return view;
}

function badge(state) {
  return el("span", { class: `badge ${state || ""}` }, state || "-");
}

function when(iso, absolute = false) {
  if (!iso) return "-";
  const date = new Date(iso);
  const text = `${date.toISOString().replace("T", " ").slice(0, 19)} UTC`;
  const seconds = Math.round((date - Date.now()) / 1000);
  return el("time", { datetime: iso, title: text }, relative(seconds),
    absolute ? el("span", { class: "muted" }, ` · ${text}`) : null);
}

function interval(seconds) {
  const parts = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  let left = Math.round(seconds);
  const shown = [];
  for (const [size, unit] of parts) {
    if (left >= size) { shown.push(`${Math.floor(left / size)} ${unit}`); left %= size; }
  }
  return shown.join(" ") || "0 s";
}

function relative(seconds) {
  const size = Math.abs(seconds);
  const [value, unit] = size < 60 ? [size, "s"] : size < 3600 ? [size / 60, "min"]
    : size < 86400 ? [size / 3600, "h"] : [size / 86400, "d"];
  const shown = `${Math.round(value)} ${unit}`;
  return size < 1 ? "now" : seconds > 0 ? `in ${shown}` : `${shown} ago`;
}

function itemLink(id, text) {
  return el("a", { href: `#/item/${encodeURIComponent(id)}`, class: "mono" }, text || id);
}

function itemsLink(filters, text) {
  return el("a", { href: `#/items?${new URLSearchParams(filters)}` }, text);
}

function notice(message, kind = "error") {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = !message;
}

// -- the overview ----------------------------------------------------------------------

async function overview() {
  const view = mount("overview-tpl");
  return async () => {
    const [queues, throughput] = await Promise.all([api("v1/queues"),
      api("v1/throughput")]);
    renderQueues(view, queues.queues);
    renderChart(view.querySelector("#chart"), throughput.minutes);
    await renderSchedules(view.querySelector("#overview-schedules"));
  };
}

function renderTotals(view, queues) {
  const totals = Object.fromEntries(STATES.map((state) => [state,
    queues.reduce((sum, { counts }) => sum + (counts[state] || 0), 0)]));
  view.querySelector("#totals").replaceChildren(...STATES.map((state) =>
    el("a", { class: `tile ${state} ${totals[state] ? "" : "zero"}`, "data-total": state,
      href: `#/items?${new URLSearchParams({ state })}` },
    el("span", { class: "tile-count" }, totals[state].toLocaleString()),
    el("span", { class: "tile-label" }, state))));
}

function renderQueues(view, queues) {
  renderTotals(view, queues);
  const rows = queues.map(({ queue, counts }) => el("tr", { "data-queue": queue },
    el("td", {}, itemsLink({ queue }, queue)),
    STATES.map((state) => el("td", { class: `count ${counts[state] ? state : "zero"}`,
      "data-state": state }, itemsLink({ queue, state }, counts[state] || 0)))));
  view.querySelector("#queues tbody").replaceChildren(...rows);
  view.querySelector("#queues-empty").hidden = queues.length > 0;
}

function renderChart(box, minutes) {
  const width = 720, height = 160, pad = 24;
  const handled = minutes.map((m) => m.acked + m.retried + m.failed);
  const top = Math.max(1, ...handled, ...minutes.map((m) => m.published));
  const step = (width - pad) / minutes.length;
  const y = (value) => height - pad - (value / top) * (height - 2 * pad);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg" });
  svg.append(svgEl("line", { x1: pad, x2: width, y1: y(0), y2: y(0), class: "axis" }));
  svg.append(svgText(2, y(top) + 4, String(top)), svgText(2, y(0) + 4, "0"));
  minutes.forEach((minute, index) => {
    let base = 0;
    for (const series of ["acked", "retried", "failed"]) {
      if (!minute[series]) continue;
      const bar = svgEl("rect", { x: pad + index * step + 1, width: Math.max(1, step - 2),
        y: y(base + minute[series]), height: y(base) - y(base + minute[series]),
        class: series });
      bar.append(svgEl("title", {}, `${clock(minute.minute)}: ${minute[series]} ${series}`));
      svg.append(bar);
      base += minute[series];
    }
  });
  const points = minutes.map((m, i) => `${pad + (i + 0.5) * step},${y(m.published)}`);
  svg.append(svgEl("polyline", { points: points.join(" "), class: "published" }));
  svg.append(svgText(pad, height - 6, clock(minutes[0].minute)),
    svgText(width - 40, height - 6, clock(minutes[minutes.length - 1].minute)));
  const total = handled.reduce((a, b) => a + b, 0);
  box.replaceChildren(svg, el("p", { class: "hint", id: "chart-total" },
    `${total} handled, ${minutes.reduce((a, m) => a + m.published, 0)} published`));
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgText(x, y, text) {
  return svgEl("text", { x, y, class: "tick" }, text);
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toTimeString().slice(0, 5);
}

// -- schedules -------------------------------------------------------------------------

async function renderSchedules(box) {
  let schedules;
  try {
    schedules = (await api("v1/schedules")).schedules;
  } catch (error) {
    if (error.status !== 501) throw error;
    box.replaceChildren(el("p", { class: "empty" }, `Not available: ${error.message}`));
    return;
  }
  if (!schedules.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No recurring schedule."));
    return;
  }
  box.replaceChildren(el("table", { class: "grid", id: "schedule-table" },
    el("thead", {}, el("tr", {}, ["name", "timing", "tid", "next", "last"].map(
      (h) => el("th", {}, h)))),
    el("tbody", {}, schedules.map((s) => el("tr", {},
      el("td", {}, itemsLink({ name: s.name }, s.name)),
      el("td", { class: "mono" }, s.cron ? `cron ${s.cron} (${s.tz})` : `every ${interval(s.every)}`),
      el("td", {}, s.tid || "-"), el("td", {}, when(s.next)),
      el("td", {}, when(s.last)))))));
}

async function schedulesView() {
  const view = mount("schedules-tpl");
  return () => renderSchedules(view.querySelector("#schedules"));
}

// -- the item list ---------------------------------------------------------------------

async function itemsView(params) {
  const view = mount("items-tpl");
  const form = view.querySelector("#filters");
  const filters = {};
  for (const key of ["queue", "state", "name", "tid"]) {
    if (params.get(key)) filters[key] = params.get(key);
  }
  const cursor = params.get("cursor");
  const queues = (await api("v1/queues")).queues.map((q) => q.queue);
  const select = form.elements.queue;
  for (const queue of new Set([...queues, filters.queue].filter(Boolean))) {
    select.append(el("option", { value: queue }, queue));
  }
  for (const [key, value] of Object.entries(filters)) form.elements[key].value = value;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries([...new FormData(form)].filter(([, v]) => v));
    location.hash = `#/items?${new URLSearchParams(chosen)}`;
  });
  view.querySelector("#clear").addEventListener("click", () => { location.hash = "#/items"; });
  return async () => {
    const query = new URLSearchParams({ ...filters, limit: "50" });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`v1/items?${query}`);
    renderItems(view, page, filters, cursor);
  };
}

function renderItems(view, page, filters, cursor) {
  const rows = page.items.map((item) => el("tr", { "data-id": item.id },
    el("td", {}, itemLink(item.id)), el("td", {}, item.queue),
    el("td", {}, item.name), el("td", {}, item.tid || "-"), el("td", {}, badge(item.state)),
    el("td", {}, when(item.due)), el("td", { class: "count" }, item.attempts)));
  view.querySelector("#items tbody").replaceChildren(...rows);
  view.querySelector("#items-empty").hidden = page.items.length > 0;
  view.querySelector("#items-shown").textContent = page.items.length
    ? `${page.items.length} item(s)${page.next ? ", more on the next page" : ""}` : "";
  const next = view.querySelector("#next");
  next.hidden = !page.next;
  next.onclick = () => {
    location.hash = `#/items?${new URLSearchParams({ ...filters, cursor: page.next })}`;
  };
  const first = view.querySelector("#first");
  first.hidden = !cursor;
  first.onclick = () => { location.hash = `#/items?${new URLSearchParams(filters)}`; };
  const area = view.querySelector("#cancel-area");
  const { queue, name, tid } = filters;
  const scope = Object.fromEntries(Object.entries({ queue, name, tid }).filter(([, v]) => v));
  if (Object.keys(scope).length && !area.dataset.asking) {
    area.replaceChildren(cancelButton(scope, "Cancel pending items matching these filters"));
  } else if (!Object.keys(scope).length) {
    area.replaceChildren();
  }
}

// Cancelling deletes every pending item matching the filters: ask first, inline.
function cancelButton(scope, label) {
  const area = el("span", { class: "cancel" });
  const ask = el("button", { type: "button", class: "danger-quiet", id: "cancel" }, label);
  ask.addEventListener("click", () => {
    area.parentElement.dataset.asking = "1";
    const what = Object.entries(scope).map(([k, v]) => `${k} = ${v}`).join(", ");
    area.replaceChildren(el("span", {}, `Delete every pending item with ${what}? `),
      el("button", { type: "button", class: "danger", id: "cancel-confirm", onclick: () =>
        act(async () => {
          const { cancelled } = await api(`v1/items?${new URLSearchParams(scope)}`,
            { method: "DELETE" });
          delete area.parentElement.dataset.asking;
          notice(`Cancelled ${cancelled} pending item(s).`, "ok");
        }) }, "Yes, cancel them"),
      el("button", { type: "button", class: "quiet", onclick: () => {
        delete area.parentElement.dataset.asking;
        area.replaceWith(cancelButton(scope, label));
      } }, "Keep them"));
  });
  area.append(ask);
  return area;
}

// -- one item --------------------------------------------------------------------------

async function itemView(id) {
  const view = mount("item-tpl");
  view.querySelector("#item-id").textContent = id;
  view.querySelector("#retry").addEventListener("click", () => act(async () => {
    await api(`v1/items/${encodeURIComponent(id)}/retry`, { method: "POST" });
    notice("Moved back to ready: it will be handled again.", "ok");
  }));
  return async () => renderItem(view, await api(`v1/items/${encodeURIComponent(id)}`));
}

async function renderItem(view, item) {
  view.querySelector("#item-state").replaceWith(
    Object.assign(badge(item.state), { id: "item-state" }));
  view.querySelector("#retry").hidden = item.state !== "failed";
  const cancelArea = view.querySelector("#item-cancel");
  if (PENDING.includes(item.state) && !cancelArea.dataset.asking) {
    const scope = { queue: item.queue, name: item.name, ...(item.tid ? { tid: item.tid } : {}) };
    cancelArea.replaceChildren(cancelButton(scope, "Cancel…"));
  } else if (!PENDING.includes(item.state)) {
    cancelArea.replaceChildren();
  }
  const fields = [["queue", itemsLink({ queue: item.queue }, item.queue)],
    ["name", itemsLink({ name: item.name }, item.name)], ["tid", item.tid || "-"],
    ["due", when(item.due, true)], ["created", when(item.created, true)],
    ["attempts", item.attempts], ["worker", item.worker || "-"],
    ["finished", when(item.finished, true)]];
  if (item.flow) fields.push(["flow", flowLink(item.flow)]);
  view.querySelector("#fields").replaceChildren(...fields.flatMap(([key, value]) =>
    [el("dt", {}, key), el("dd", { "data-field": key }, value)]));
  view.querySelector("#payload").textContent = JSON.stringify(item.payload, null, 2);
  const errors = item.errors.slice().reverse().map((error) => el("li", {},
    el("div", { class: "error-head" }, el("strong", {}, `attempt ${error.attempt}`), " ",
      when(error.at), " ", el("code", {}, `${error.type}: ${error.message}`)),
    error.traceback ? el("details", { open: true }, el("summary", {}, "traceback"),
      el("pre", { class: "code traceback" }, error.traceback)) : null));
  view.querySelector("#errors").replaceChildren(...errors);
  view.querySelector("#errors-empty").hidden = item.errors.length > 0;
  await renderLineage(view, item);
}

// The tree the item belongs to, nested by parent; a backend without lineage says so.
async function renderLineage(view, item) {
  const card = view.querySelector("#lineage-card");
  const box = view.querySelector("#lineage");
  const hint = view.querySelector("#lineage-hint");
  let tree;
  try {
    tree = (await api(`v1/items/${encodeURIComponent(item.id)}/lineage`)).items;
  } catch (error) {
    if (error.status !== 501) throw error;
    card.hidden = false;
    box.replaceChildren(el("p", { class: "empty" }, `Not available: ${error.message}`));
    return;
  }
  card.hidden = false;
  const held = new Set(tree.map((node) => node.id));
  const children = new Map();
  const tops = [];
  for (const node of tree) {  // in creation order: children come out oldest first
    if (node.parent && held.has(node.parent)) {
      if (!children.has(node.parent)) children.set(node.parent, []);
      children.get(node.parent).push(node);
    } else {
      tops.push(node);
    }
  }
  const branch = (nodes) => el("ul", { class: "tree" }, nodes.map((node) => el("li", {},
    lineageNode(node, node.id === item.id, held),
    children.has(node.id) ? branch(children.get(node.id)) : null)));
  box.replaceChildren(branch(tops));
  hint.textContent = tree.length > 1
    ? `${tree.length} items share the root ${item.root || item.id}, oldest first.`
    : "No item published this one, and its handler published none.";
}

function lineageNode(node, current, held) {
  return el("div", { class: `node${current ? " current" : ""}`, "data-id": node.id,
    "aria-current": current ? "true" : null },
  itemLink(node.id, node.name), " ", badge(node.state),
  el("span", { class: "muted" }, ` ${node.queue}${node.tid ? ` · tid ${node.tid}` : ""}`),
  current ? el("span", { class: "you" }, "this item") : null,
  node.parent && !held.has(node.parent)
    ? el("span", { class: "muted" }, ` (its parent ${node.parent} is no longer kept)`) : null);
}

// -- one flow --------------------------------------------------------------------------

function flowLink(id, text) {
  return el("a", { href: `#/flow/${encodeURIComponent(id)}`, class: "mono" }, text || id);
}

async function flowView(id) {
  const view = mount("flow-tpl");
  view.querySelector("#flow-id").textContent = id;
  return async () => renderFlow(view, await api(`v1/flows/${encodeURIComponent(id)}`));
}

function renderFlow(view, flow) {
  view.querySelector("#flow-state").replaceWith(
    Object.assign(badge(flow.state), { id: "flow-state" }));
  const fields = [["name", itemsLink({ name: flow.name }, flow.name)], ["tid", flow.tid || "-"],
    ["created", when(flow.created, true)], ["finished", when(flow.finished, true)],
    ["steps", `${flow.steps.length}, of ${flow.steps.map((s) => s.length).join(" + ")} job(s)`]];
  view.querySelector("#flow-fields").replaceChildren(...fields.flatMap(([key, value]) =>
    [el("dt", {}, key), el("dd", { "data-field": key }, value)]));
  const box = view.querySelector("#flow-error");
  box.hidden = !flow.error;
  box.replaceChildren(...(flow.error ? [el("strong", {}, `${flow.state} at attempt `
    + `${flow.error.attempt}: `), el("code", {}, `${flow.error.type}: ${flow.error.message}`)]
    : []));
  view.querySelector("#steps").replaceChildren(...flow.steps.map((jobs, index) =>
    el("section", { class: "step", "data-step": index },
      el("h3", {}, `Step ${index + 1}`, " ", badge(stepState(jobs))),
      jobs.map(jobCard))));
  view.querySelector("#flow-results").textContent = JSON.stringify(flow.results, null, 2);
}

// A step is as far as its least advanced job: failed first, then running, waiting, done.
function stepState(jobs) {
  const order = ["failed", "processing", "ready", "scheduled", "cancelled", "done"];
  return order.find((state) => jobs.some((job) => job.state === state)) || "done";
}

function jobCard(job) {
  return el("article", { class: `job ${job.state}`, "data-job": job.name },
    el("div", { class: "job-head" }, el("strong", {}, job.name), " ",
      el("span", { class: "job-state" }, badge(job.state))),
    el("div", { class: "muted" }, `${job.attempts} attempt(s)`, job.item_ids.length ? " · " : "",
      job.item_ids.flatMap((id, n) => [n ? ", " : "", itemLink(id, `item ${n + 1}`)])),
    job.result === null || job.result === undefined ? null
      : el("pre", { class: "code result" }, JSON.stringify(job.result, null, 2)),
    job.errors.length ? el("ol", { class: "errors job-errors" }, job.errors.map((error) =>
      el("li", {}, el("code", {}, `attempt ${error.attempt}: ${error.type}: ${error.message}`))))
      : null);
}

// -- actions, routing and live refresh -------------------------------------------------

async function act(action) {
  try {
    await action();
    await refresh();
  } catch (error) {
    notice(error.message);
  }
}

const ROUTES = [
  [/^#\/items(?:\?(.*))?$/, (m) => itemsView(new URLSearchParams(m[1] || "")), "items"],
  [/^#\/item\/(.+)$/, (m) => itemView(decodeURIComponent(m[1])), "items"],
  [/^#\/flow\/(.+)$/, (m) => flowView(decodeURIComponent(m[1])), "items"],
  [/^#\/schedules$/, () => schedulesView(), "schedules"],
  [/^.*$/, () => overview(), "overview"],
];

async function route() {
  notice("");
  const hash = location.hash || "#/";
  const [pattern, build, nav] = ROUTES.find(([p]) => p.test(hash));
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === nav);
  }
  try {
    live.render = await build(hash.match(pattern));
    await refresh();
  } catch (error) {
    failed(error);
  }
}

async function refresh() {
  if (!live.render) return;
  try {
    await live.render();
    setLive(true, `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    failed(error);
  }
}

function failed(error) {
  if (error.status === 401) {
    document.getElementById("login").hidden = false;
    document.getElementById("view").hidden = true;
    setLive(false, "token needed");
    return;
  }
  setLive(false, error.status === 503 ? "unavailable" : "error");
  notice(error.message || String(error));
}

function setLive(ok, text) {
  document.getElementById("live-dot").className = `dot ${ok ? (live.paused ? "paused" : "ok") : "bad"}`;
  document.getElementById("live-text").textContent = live.paused ? `paused, ${text}` : text;
}

function tick() {
  if (!live.paused && !document.hidden) refresh();
}

function start() {
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("login-token").value.trim());
    document.getElementById("login").hidden = true;
    document.getElementById("view").hidden = false;
    route();
  });
  document.getElementById("live-toggle").addEventListener("click", (event) => {
    live.paused = !live.paused;
    event.target.textContent = live.paused ? "Resume" : "Pause";
    refresh();
  });
  window.addEventListener("hashchange", route);
  live.timer = setInterval(tick, REFRESH_MS);
  route();
}

start();
