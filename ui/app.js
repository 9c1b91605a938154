// app.js — the lsmi dashboard: datasets, jobs and per-sample results, drawn
// with plain DOM and SVG from the daemon's own API (same origin, no library,
// no network beyond the daemon). Every API error is shown as the problem the
// daemon answered: status, title, detail, the field concerned and the
// request id to find it in the daemon's log.
"use strict";

const COLS = ["r", "u1", "u2", "s", "i1", "i2", "i12", "h1", "h2"];
const JOIN = ["row", "id", "label"];
const SD = ["r_sd", "u1_sd", "u2_sd", "s_sd"];
const MAIN = ["r", "u1", "u2", "s"];
const SUMMARY = ["R", "U1", "U2", "S", "I1", "I2", "I12", "H1", "H2"];
const PALETTE = ["#2a6fdb", "#e8710a", "#1e8e3e", "#d93025", "#9334e6",
                 "#12b5cb", "#b06000", "#e52592", "#5f6368", "#188038"];
const SVGNS = "http://www.w3.org/2000/svg";
const PAGE = 20;

const state = {
  token: sessionStorage.getItem("lsmi-token") || "",
  params: null,       // GET /v1/params
  datasets: [],
  jobs: [],
  streams: new Map(), // job id -> AbortController of its event stream
  job: null,          // the job shown
  rows: { split: "val", sort: "index", offset: 0, y: "" },
};

// ---- small helpers ----

const $ = (id) => document.getElementById(id);

// An element: attrs may hold text, class, on* handlers and attributes.
function h(tag, attrs, ...kids) {
  const svg = ["svg", "rect", "line", "circle", "text", "g", "title", "path"]
    .includes(tag);
  const el = svg ? document.createElementNS(SVGNS, tag)
                 : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toFixed(digits);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, problem, requestId) {
    const p = problem || {};
    let msg = `${status} ${p.title || "error"}: ${p.detail || "(no detail)"}`;
    if (p.field) msg += ` [field: ${p.field}]`;
    if (requestId) msg += ` (request ${requestId})`;
    super(msg);
    this.status = status;
    this.problem = p;
  }
}

function authHeaders(extra) {
  const hd = Object.assign({}, extra || {});
  if (state.token) hd.Authorization = "Bearer " + state.token;
  return hd;
}

// Answers a problem response: a 401 asks for the token.
async function failure(resp) {
  let problem = null;
  try { problem = await resp.json(); } catch (e) { /* not JSON */ }
  if (resp.status === 401) {
    $("token-form").hidden = false;
    problem = Object.assign({}, problem, {
      detail: (problem && problem.detail ? problem.detail + ". " : "") +
              "Enter the service's bearer token above." });
  }
  return new ApiError(resp.status, problem, resp.headers.get("X-Request-Id"));
}

async function api(method, path, body) {
  const opts = { method, headers: authHeaders() };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new Error(`the daemon did not answer ${method} ${path}: ${e.message}`);
  }
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

function showError(e) {
  const box = $("error");
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
  console.error(e);
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// Runs an action; its failure goes to the error banner.
function guarded(fn) {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (e) {
      showError(e);
    }
  };
}

// ---- datasets ----

async function loadDatasets() {
  const page = await api("GET", "/v1/datasets?limit=200");
  state.datasets = page.datasets;
  renderDatasets();
}

function renderDatasets() {
  const body = $("datasets").tBodies[0];
  body.replaceChildren(...state.datasets.map((d) => h("tr", { "data-id": d.id },
    h("td", { text: d.name }), h("td", { text: d.id }),
    h("td", { text: d.format }), h("td", { class: "num", text: d.classes }),
    h("td", { class: "num", text: d.splits.train.n }),
    h("td", { class: "num", text: d.splits.val.n }),
    h("td", { text: `${d.splits.train.d1}, ${d.splits.train.d2}` }),
    h("td", { text: when(d.created_at) }),
    h("td", {},
      h("button", { type: "button", class: "details-btn",
                    onclick: guarded(() => showDataset(d.id)) }, "details"), " ",
      h("button", { type: "button", class: "delete-btn",
                    onclick: guarded(() => deleteDataset(d.id)) }, "delete")))));
  const sel = $("job-dataset");
  const was = sel.value;
  sel.replaceChildren(...state.datasets.map((d) =>
    h("option", { value: d.id, text: `${d.name} (${d.id})` })));
  if (state.datasets.some((d) => d.id === was)) sel.value = was;
}

async function showDataset(id) {
  const d = await api("GET", "/v1/datasets/" + id);
  const pre = $("dataset-details");
  pre.textContent = JSON.stringify(d, null, 2);
  pre.hidden = false;
}

async function deleteDataset(id) {
  await api("DELETE", "/v1/datasets/" + id);
  $("dataset-details").hidden = true;
  await loadDatasets();
}

// Uploads a file as multipart/form-data, with its progress.
function upload(file) {
  clearError();
  const bar = $("upload-progress");
  const status = $("upload-status");
  bar.hidden = false;
  bar.value = 0;
  status.textContent = `uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/datasets");
  if (state.token) xhr.setRequestHeader("Authorization", "Bearer " + state.token);
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable) bar.value = ev.loaded / ev.total;
  };
  xhr.onerror = () => {
    bar.hidden = true;
    status.textContent = "";
    showError(`the upload of ${file.name} failed: the daemon did not answer`);
  };
  xhr.onload = guarded(async () => {
    bar.hidden = true;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* none */ }
    if (xhr.status === 201 || xhr.status === 200) {
      // The list first: once the status says so, the dataset is listed.
      await loadDatasets();
      $("job-dataset").value = body.id;
      status.textContent = xhr.status === 201
        ? `uploaded ${file.name} as ${body.id}`
        : `${file.name} was uploaded before: ${body.id}`;
      return;
    }
    status.textContent = "";
    if (xhr.status === 401) $("token-form").hidden = false;
    throw new ApiError(xhr.status, body, xhr.getResponseHeader("X-Request-Id"));
  });
  xhr.send(form);
}

function setupUpload() {
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) upload(ev.dataTransfer.files[0]);
  });
  $("upload-input").addEventListener("change", (ev) => {
    if (ev.target.files.length) upload(ev.target.files[0]);
    ev.target.value = "";
  });
}

// ---- the job form, from the parameter table ----

async function loadParams() {
  state.params = await fetch("/v1/params").then((r) => r.json());
  const presets = Object.keys(state.params.presets);
  $("job-preset").replaceChildren(...presets.map((p) =>
    h("option", { value: p, text: p })));
  const box = $("job-params");
  box.replaceChildren(...state.params.params
    .filter((p) => p.name !== "preset")
    .map((p) => {
      let input;
      if (p.type === "boolean") {
        input = h("input", { type: "checkbox", name: p.name });
      } else if (p.choices) {
        input = h("select", { name: p.name },
          p.choices.map((c) => h("option", { value: c, text: c })));
      } else {
        input = h("input", { type: "number", name: p.name,
                             step: p.type === "integer" ? 1 : "any",
                             min: p.min, max: p.max });
      }
      return h("label", { title: p.help },
        h("span", {}, p.name, " ", h("span", { class: "def",
          text: `(default ${p.default})` })), input);
    }));
  applyPreset();
}

// Sets every input to the chosen preset's value.
function applyPreset() {
  const values = state.params.presets[$("job-preset").value];
  for (const el of $("job-params").querySelectorAll("[name]")) {
    const v = values[el.name];
    if (el.type === "checkbox") el.checked = !!v;
    else el.value = v;
  }
}

function inputValue(el, type) {
  if (el.type === "checkbox") return el.checked;
  if (type === "integer") return parseInt(el.value, 10);
  if (type === "number") return parseFloat(el.value);
  return el.value;
}

async function submitJob(ev) {
  ev.preventDefault();
  clearError();
  const preset = $("job-preset").value;
  const base = state.params.presets[preset];
  const params = { preset };
  for (const p of state.params.params) {
    const el = $("job-params").querySelector(`[name="${p.name}"]`);
    if (!el) continue;
    const v = inputValue(el, p.type);
    if (v !== base[p.name]) params[p.name] = v;
  }
  const job = await api("POST", "/v1/jobs",
                        { dataset_id: $("job-dataset").value, params });
  await loadJobs();
  await selectJob(job.id);
}

// ---- jobs ----

async function loadJobs() {
  const page = await api("GET", "/v1/jobs?limit=100");
  state.jobs = page.jobs;
  renderJobs();
  for (const j of state.jobs) {
    if ((j.state === "queued" || j.state === "running") &&
        !state.streams.has(j.id)) watch(j.id);
  }
}

function progressCell(j) {
  const p = j.progress || {};
  if (j.state === "queued") {
    return h("td", { class: "progress" },
      p.queue_position ? `queued, #${p.queue_position} in line` : "queued");
  }
  const frac = j.state === "succeeded" ? 1 : (p.fraction || 0);
  const bar = h("span", { class: "bar" }, h("span"));
  bar.firstChild.style.width = `${(100 * frac).toFixed(1)}%`;
  return h("td", { class: "progress" }, bar,
    ` ${(100 * frac).toFixed(0)}% · epoch ${p.epoch ?? 0}/${p.epochs ?? "?"}`,
    p.phase && j.state === "running" ? ` · ${p.phase}` : "");
}

function jobRow(j) {
  const active = j.state === "queued" || j.state === "running";
  const p = j.progress || {};
  return h("tr", { class: "clickable" + (state.job && state.job.id === j.id
                                          ? " selected" : ""),
                   "data-id": j.id, "data-state": j.state,
                   onclick: guarded(() => selectJob(j.id)) },
    h("td", { text: j.id }), h("td", { text: j.dataset_id }),
    h("td", { class: "state state-" + j.state, text: j.state +
      (j.cancel_requested && active ? " (cancelling)" : "") }),
    progressCell(j),
    h("td", { class: "eta", text: j.state === "running"
      ? seconds(p.eta_seconds) : "–" }),
    h("td", { text: when(j.created_at) }),
    h("td", {}, active ? h("button", { type: "button", class: "cancel-btn",
      onclick: guarded(async (ev) => {
        ev.stopPropagation();
        await api("DELETE", "/v1/jobs/" + j.id);
        await loadJobs();
      }) }, "cancel") : null));
}

function renderJobs() {
  $("jobs").tBodies[0].replaceChildren(...state.jobs.map(jobRow));
}

// Reads a job's server-sent events (fetch, so that the token goes along)
// until the job is finished.
async function watch(id) {
  const ctl = new AbortController();
  state.streams.set(id, ctl);
  try {
    const resp = await fetch(`/v1/jobs/${id}/events`,
                             { headers: authHeaders(), signal: ctl.signal });
    if (!resp.ok) throw await failure(resp);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        onEvent(id, buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") showError(e);
  } finally {
    state.streams.delete(id);
  }
  await guarded(loadJobs)();
  if (state.job && state.job.id === id) await guarded(selectJob)(id);
}

function onEvent(id, text) {
  let type = "message";
  let data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event: ")) type = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (type !== "job") return;
  const job = JSON.parse(data);
  const i = state.jobs.findIndex((j) => j.id === id);
  if (i >= 0) {
    state.jobs[i] = job;
    const old = $("jobs").querySelector(`tr[data-id="${id}"]`);
    if (old) old.replaceWith(jobRow(job));
  }
  if (state.job && state.job.id === id) renderJobMeta(job);
}

// ---- one job ----

async function selectJob(id) {
  clearError();
  const job = await api("GET", "/v1/jobs/" + id);
  const changed = !state.job || state.job.id !== id ||
                  state.job.state !== job.state;
  state.job = job;
  $("job-view").hidden = false;
  $("job-title").textContent = id;
  for (const tr of $("jobs").tBodies[0].rows) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  renderJobMeta(job);
  const done = job.state === "succeeded";
  for (const el of ["summary", "histograms", "scatter-box", "class-means",
                    "rows"]) {
    $(el).closest("section").hidden = false;
  }
  for (const el of document.querySelectorAll("#job-view > :not(h2):not(#job-meta)")) {
    el.hidden = !done;
  }
  $("sample").hidden = true;
  if (!done || !changed) return;
  renderSummary(job);
  state.rows = { split: "val", sort: "index", offset: 0, y: "" };
  $("rows-split").value = "val";
  $("rows-y").value = "";
  const cols = COLS.concat(job.params.ensemble > 1 ? SD : []);
  for (const sel of [$("scatter-x"), $("scatter-y")]) {
    sel.replaceChildren(...cols.map((c) => h("option", { value: c, text: c })));
  }
  $("scatter-x").value = "u1";
  $("scatter-y").value = "s";
  await Promise.all([drawAggregates(), drawScatter(), loadRows()]);
}

function renderJobMeta(job) {
  const p = job.progress || {};
  let text = `dataset ${job.dataset_id} · state ${job.state}`;
  if (job.state === "running") {
    text += ` · ${(100 * (p.fraction || 0)).toFixed(0)}% · epoch ${p.epoch}/${p.epochs}` +
            ` · ETA ${seconds(p.eta_seconds)}`;
  }
  if (job.state === "queued" && p.queue_position) {
    text += ` · #${p.queue_position} in the queue`;
  }
  if (job.error) text += ` · ${job.error.title}: ${job.error.detail}`;
  if (job.timings && job.timings.seconds_total !== undefined) {
    text += ` · ${seconds(job.timings.seconds_total)}`;
  }
  text += ` · preset ${job.params.preset}, ensemble ${job.params.ensemble}`;
  $("job-meta").textContent = text;
}

function renderSummary(job) {
  const s = job.summary;
  const table = $("summary");
  const head = h("tr", {}, h("th", { text: "split" }), h("th", { text: "n" }),
                 SUMMARY.map((k) => h("th", { class: "num", text: k })));
  const rows = ["train", "val"].map((split) => {
    const m = s[split];
    return h("tr", { "data-split": split },
      h("td", { text: split }), h("td", { class: "num", text: m.n }),
      SUMMARY.map((k) => {
        const ci = m.ci && m.ci[k];
        return h("td", { class: "num", "data-key": k,
                         "data-value": m[k] === null ? "null" : String(m[k]),
                         title: ci ? `95% interval [${fmt(ci[0])}, ${fmt(ci[1])}]`
                                   : null },
          fmt(m[k]), ci ? h("div", { class: "def",
                                     text: `[${fmt(ci[0], 3)}, ${fmt(ci[1], 3)}]` })
                        : null);
      }));
  });
  table.replaceChildren(h("thead", {}, head), h("tbody", {}, rows));
  const warn = $("job-warnings");
  warn.replaceChildren(...(s.warnings || []).map((w) =>
    h("div", { class: "warn", text: `${w.code}${w.split ? " (" + w.split + ")" : ""}: ${w.message}` })));
}

// Histograms of r, u1, u2, s for both splits on one range, and the means
// per class, from one aggregates request.
async function drawAggregates() {
  const job = state.job;
  const bins = Math.max(5, Math.min(200, parseInt($("bins").value, 10) || 30));
  const agg = await api("GET", `/v1/jobs/${job.id}/aggregates?split=all` +
                                `&column=${MAIN.join(",")}&bins=${bins}`);
  const box = $("histograms");
  const charts = [];
  for (const split of ["train", "val"]) {
    for (const col of MAIN) {
      charts.push(histogram(split, col, agg.splits[split].columns[col]));
    }
  }
  box.replaceChildren(...charts);
  classMeans(agg);
}

function histogram(split, col, c) {
  const W = 260, H = 150, L = 34, B = 22, T = 18;
  const counts = c.histogram.counts;
  const max = Math.max(1, ...counts);
  const bw = (W - L - 6) / counts.length;
  const svg = h("svg", { width: W, height: H, class: "chart hist",
                         id: `hist-${split}-${col}`, "data-n": c.n,
                         viewBox: `0 0 ${W} ${H}` });
  svg.append(h("text", { x: L, y: 12, class: "title",
                         text: `${col} · ${split} · mean ${fmt(c.mean, 3)}` }));
  counts.forEach((n, i) => {
    const bh = (H - T - B) * n / max;
    svg.append(h("rect", { class: "hbar", x: L + i * bw + 0.5, y: H - B - bh,
                           width: Math.max(1, bw - 1), height: bh,
                           fill: "#2a6fdb", "data-count": n },
      h("title", { text: `[${fmt(c.histogram.edges[i], 3)}, ` +
                         `${fmt(c.histogram.edges[i + 1], 3)}): ${n}` })));
  });
  svg.append(h("line", { x1: L, x2: W - 6, y1: H - B, y2: H - B,
                         stroke: "#999" }));
  svg.append(h("text", { x: L, y: H - 6, text: fmt(c.histogram.lo, 2) }));
  svg.append(h("text", { x: W - 6, y: H - 6, "text-anchor": "end",
                         text: fmt(c.histogram.hi, 2) }));
  svg.append(h("text", { x: L - 4, y: T + 8, "text-anchor": "end",
                         text: max }));
  return svg;
}

function classMeans(agg) {
  const head = h("tr", {}, h("th", { text: "split" }), h("th", { text: "class" }),
                 h("th", { class: "num", text: "n" }),
                 MAIN.map((c) => h("th", { class: "num", text: `mean ${c}` })));
  const rows = [];
  for (const split of ["train", "val"]) {
    const cols = agg.splits[split].columns;
    for (const k of cols.r.by_class) {
      rows.push(h("tr", { "data-split": split, "data-y": k.y },
        h("td", { text: split }),
        h("td", { text: k.label === undefined ? k.y : `${k.y} (${k.label})` }),
        h("td", { class: "num", text: k.n }),
        MAIN.map((c) => {
          const m = cols[c].by_class.find((x) => x.y === k.y);
          return h("td", { class: "num", "data-key": c,
                           "data-value": String(m.mean) }, fmt(m.mean));
        })));
    }
  }
  $("class-means").replaceChildren(h("thead", {}, head), h("tbody", {}, rows));
}

// A scatter of two columns, coloured by class (up to 2,000 samples).
async function drawScatter() {
  const job = state.job;
  const x = $("scatter-x").value, y = $("scatter-y").value;
  const split = $("scatter-split").value;
  const page = await api("GET", `/v1/jobs/${job.id}/results?split=${split}` +
                                `&fields=y,${x},${y}&limit=2000`);
  const W = 520, H = 360, L = 46, B = 32, T = 12, R = 12;
  const pts = page.rows.filter((r) => r[x] !== null && r[y] !== null);
  const xs = pts.map((r) => r[x]), ys = pts.map((r) => r[y]);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 0);
  const y0 = Math.min(...ys, 0), y1 = Math.max(...ys, 0);
  const sx = (v) => L + (W - L - R) * (v - x0) / ((x1 - x0) || 1);
  const sy = (v) => H - B - (H - B - T) * (v - y0) / ((y1 - y0) || 1);
  const svg = h("svg", { width: W, height: H, class: "chart", id: "scatter",
                         viewBox: `0 0 ${W} ${H}` });
  svg.append(h("line", { x1: L, x2: W - R, y1: sy(0), y2: sy(0), stroke: "#ccc" }));
  svg.append(h("line", { x1: sx(0), x2: sx(0), y1: T, y2: H - B, stroke: "#ccc" }));
  const g = h("g", {});
  for (const r of pts) {
    g.append(h("circle", { cx: sx(r[x]).toFixed(1), cy: sy(r[y]).toFixed(1),
                           r: 2.5, fill: PALETTE[r.y % PALETTE.length],
                           "fill-opacity": 0.7, "data-index": r.index }));
  }
  svg.append(g);
  svg.append(h("text", { x: W / 2, y: H - 6, "text-anchor": "middle", text: x }));
  svg.append(h("text", { x: 12, y: H / 2, text: y,
                         transform: `rotate(-90 12 ${H / 2})` }));
  svg.append(h("text", { x: L, y: H - B + 14, text: fmt(x0, 2) }));
  svg.append(h("text", { x: W - R, y: H - B + 14, "text-anchor": "end",
                         text: fmt(x1, 2) }));
  svg.append(h("text", { x: L - 4, y: H - B, "text-anchor": "end", text: fmt(y0, 2) }));
  svg.append(h("text", { x: L - 4, y: T + 8, "text-anchor": "end", text: fmt(y1, 2) }));
  const classes = [...new Set(pts.map((r) => r.y))].sort((a, b) => a - b);
  const legend = h("div", { class: "legend" }, classes.map((c) => {
    const dot = h("span", { text: `● class ${c}` });
    dot.style.color = PALETTE[c % PALETTE.length];
    return dot;
  }));
  $("scatter-box").replaceChildren(svg, legend);
  $("scatter-note").textContent = `${pts.length} of ${page.total} ${split} samples`;
}

// ---- the table of samples ----

function rowsQuery(extra) {
  const q = state.rows;
  let s = `split=${q.split}&sort=${encodeURIComponent(q.sort)}`;
  if (q.y.trim()) s += `&y=${encodeURIComponent(q.y.trim())}`;
  return s + (extra || "");
}

async function loadRows() {
  const job = state.job;
  const q = state.rows;
  const page = await api("GET", `/v1/jobs/${job.id}/results?` +
                                rowsQuery(`&offset=${q.offset}&limit=${PAGE}`));
  // What joins a row back to the file, when the results have it: its row
  // there, its sample id, its label (the class's own name).
  const join = JOIN.filter((c) => page.rows.length && c in page.rows[0]);
  const cols = ["index", "split", "y"].concat(COLS,
                                               job.params.ensemble > 1 ? SD : [],
                                               join);
  const key = q.sort.replace(/^-/, "");
  const isText = (c) => c === "split" || c === "id" || c === "label";
  const head = h("tr", {}, cols.map((c) => h("th", {
    class: (c === key ? "sorted " : "") + (isText(c) ? "" : "num"),
    "data-col": c,
    text: c + (c === key ? (q.sort.startsWith("-") ? " ▼" : " ▲") : ""),
    onclick: isText(c) ? null : guarded(async () => {
      q.sort = q.sort === c ? "-" + c : c;
      q.offset = 0;
      await loadRows();
    }) })));
  const body = page.rows.map((r) => h("tr", {
      class: "clickable", "data-index": r.index, "data-split": r.split,
      onclick: guarded(() => showSample(r.split, r.index)) },
    cols.map((c) => h("td", { class: isText(c) ? "" : "num",
                              "data-col": c,
                              "data-value": String(r[c]),
                              text: typeof r[c] === "number" && !Number.isInteger(r[c])
                                ? fmt(r[c]) : (r[c] === null ? "–" : r[c]) }))));
  $("rows").replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  const last = Math.min(q.offset + PAGE, page.total);
  $("rows-range").textContent = page.total
    ? `rows ${q.offset + 1}–${last} of ${page.total}` : "no rows";
  $("rows-prev").disabled = q.offset === 0;
  $("rows-next").disabled = !page.next;
}

async function showSample(split, index) {
  const r = await api("GET", `/v1/jobs/${state.job.id}/results/${split}/${index}`);
  const pre = $("sample");
  pre.textContent = `sample ${index} of ${split}\n` + JSON.stringify(r, null, 2);
  pre.hidden = false;
}

// Downloads every row (both splits) through fetch, so that the token goes
// along, and hands the file to the browser.
async function download(format) {
  const job = state.job;
  const resp = await fetch(`/v1/jobs/${job.id}/results?split=all&format=${format}`,
                           { headers: authHeaders() });
  if (!resp.ok) throw await failure(resp);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${job.id}-all.${format}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  document.body.dataset.downloaded = `${format}:${blob.size}:` +
                                      resp.headers.get("X-Total-Count");
}

// ---- start ----

function setup() {
  setupUpload();
  $("token").value = state.token;
  $("token-form").hidden = !state.token;
  $("token-form").addEventListener("submit", guarded(async (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("lsmi-token", state.token);
    clearError();
    await refresh();
  }));
  $("job-form").addEventListener("submit", guarded(submitJob));
  $("job-preset").addEventListener("change", applyPreset);
  $("job-more").addEventListener("click", () => {
    $("job-params").hidden = !$("job-params").hidden;
  });
  $("bins").addEventListener("change", guarded(drawAggregates));
  for (const id of ["scatter-x", "scatter-y", "scatter-split"]) {
    $(id).addEventListener("change", guarded(drawScatter));
  }
  $("rows-split").addEventListener("change", guarded(async () => {
    state.rows.split = $("rows-split").value;
    state.rows.offset = 0;
    await loadRows();
  }));
  $("rows-y").addEventListener("change", guarded(async () => {
    state.rows.y = $("rows-y").value;
    state.rows.offset = 0;
    await loadRows();
  }));
  $("rows-prev").addEventListener("click", guarded(async () => {
    state.rows.offset = Math.max(0, state.rows.offset - PAGE);
    await loadRows();
  }));
  $("rows-next").addEventListener("click", guarded(async () => {
    state.rows.offset += PAGE;
    await loadRows();
  }));
  $("download-csv").addEventListener("click", guarded(() => download("csv")));
  $("download-ndjson").addEventListener("click",
                                        guarded(() => download("ndjson")));
}

async function refresh() {
  await loadParams();
  await loadDatasets();
  await loadJobs();
  document.body.dataset.ready = "1";
}

setup();
guarded(refresh)();
