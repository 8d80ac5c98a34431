// knas dashboard: a small single-page app over the /v1 API. Plain JS, no build step, no CDN.
// The token lives in sessionStorage and goes out as `Authorization: Bearer` on every request;
// every value from the server is put on the page as text (never parsed as HTML).
"use strict";

const TOKEN_KEY = "knas.token";
const NOTICE_KEY = "knas.notice";
const JOB_STATES = ["queued", "scoring", "ranking", "training", "succeeded", "failed", "cancelled"];
const ACTIVE = new Set(["queued", "scoring", "ranking", "training"]);
const PAGE_SIZE = 25;
const POLL_MS = 1500;
const COLORS = ["#2457a6", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#e67700", "#5c940d",
                "#a61e4d", "#364fc7"];

// ------------------------------------------------------------------ DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

const $ = (selector, root = document) => root.querySelector(selector);
const main = () => $("#main");

function fill(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}

// ------------------------------------------------------------------ formatting

function parseTime(iso) {
  if (!iso) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z");  // the API sends naive UTC
}

function ago(iso) {
  const t = parseTime(iso);
  if (!t) return "—";
  const s = Math.max(0, (Date.now() - t.getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

const dash = "—";
const num = (x, digits = 4) => (x === null || x === undefined ? dash : Number(x).toPrecision(digits));
const pct = (x) => (x === null || x === undefined ? dash : `${Number(x).toFixed(2)} %`);
const int = (x) => (x === null || x === undefined ? dash : Number(x).toLocaleString("en-US"));
const secs = (x) => (x === null || x === undefined ? dash : `${Number(x).toFixed(x < 10 ? 2 : 1)} s`);
const shortId = (id) => id.slice(0, 8);

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

// Share of the job's work done: scored candidates, then the top-k trainings (when there is a final stage).
function jobFraction(job) {
  if (job.status === "succeeded") return 1;
  const p = job.progress;
  const trains = job.spec && job.spec.final && job.spec.final.mode !== "none" ? job.top_k : 0;
  const total = p.candidates + trains;
  const done = p.scored + p.failed + Math.min(trains, p.trained + p.training_failed);
  return total ? done / total : 0;
}

function progressBar(fraction, label, id) {
  const percent = Math.floor(fraction * 100);
  const bar = h("div", { class: "bar-fill" });
  bar.style.width = `${percent}%`;
  return h("div", { class: "bar", role: "progressbar", "aria-valuenow": percent, "aria-valuemin": 0,
                    "aria-valuemax": 100, id },
           bar, h("span", { class: "bar-label" }, label === undefined ? `${percent} %` : label));
}

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;  // 0: the server could not be reached
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function request(path, { method = "GET", body, raw = false, auth = token() } = {}) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store",
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `cannot reach the knas server at ${location.origin} (${error.message}); ` +
                          "is `knas serve` running?");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      if (problem && problem.detail) detail = problem.detail;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, detail);
  }
  return raw ? response : response.json();
}

// Downloads need the token, so they are fetched like any request and saved from a Blob.
async function download(jobId, format) {
  const parts = [];
  const rows = [];
  let offset = 0;
  let count = 0;
  do {  // the API pages at 10,000 rows: fetch them all
    const path = `/v1/jobs/${jobId}/candidates?format=${format}&limit=10000&offset=${offset}`;
    const response = await request(path, { raw: true });
    if (format === "csv") {
      count = Number(response.headers.get("X-Total-Count") || 0);
      let text = await response.text();
      if (offset > 0) text = text.slice(text.indexOf("\n") + 1);  // one header row
      parts.push(text);
    } else {
      const page = await response.json();
      count = page.count;
      rows.push(...page.data);
    }
    offset += 10000;
  } while (offset < count);
  const blob = format === "csv" ? new Blob(parts, { type: "text/csv" })
    : new Blob([JSON.stringify({ data: rows, count }, null, 1)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `knas-${jobId}-candidates.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// ------------------------------------------------------------------ pages and navigation

let page = { alive: false, timers: [] };

function newPage() {
  page.alive = false;
  page.timers.forEach(clearTimeout);
  page = { alive: true, timers: [] };
  return page;
}

// Run `fn` now and again every `ms` while it returns true and the page is still shown.
function repeat(current, ms, fn) {
  const tick = async () => {
    if (!current.alive) return;
    let again = true;
    try {
      again = await fn();
      banner(null);
    } catch (error) {
      if (!current.alive) return;
      if (error.status === 0) banner(`${error.message} — retrying`);
      else { showError(error); return; }
    }
    if (again && current.alive) current.timers.push(setTimeout(tick, ms));
  };
  return tick();
}

function banner(message) {
  const el = $("#banner");
  el.hidden = !message;
  el.textContent = message || "";
}

function navigate(path, replace = false) {
  history[replace ? "replaceState" : "pushState"](null, "", path);
  render();
}

function signOut(notice) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
  navigate(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

// An error that ends the page: a bad token goes back to the login form, anything else is an error page.
function showError(error) {
  if (error.status === 401 || error.status === 403) {
    signOut(error.status === 403 ? `Your token was refused: ${error.message}` : `Please sign in again: ${error.message}`);
    return;
  }
  newPage();
  const title = error.status === 404 ? "Not found" : error.status === 0 ? "Server unreachable" : "Something went wrong";
  fill(main(), h("section", { class: "error-page", id: "error-page", "data-status": error.status },
    h("h1", {}, title),
    h("p", { id: "error-detail" }, error.message || String(error)),
    h("p", {}, h("a", { href: "/ui/jobs", "data-link": true }, "Back to the jobs"), " · ",
      h("button", { type: "button", class: "link", onclick: () => render() }, "Try again"))));
}

const ROUTES = [
  [/^\/ui\/?$/, () => navigate(token() ? "/ui/jobs" : "/ui/login", true)],
  [/^\/ui\/login$/, loginPage],
  [/^\/ui\/jobs$/, jobsPage],
  [/^\/ui\/new$/, newJobPage],
  [/^\/ui\/jobs\/([^/]+)$/, jobPage],
  [/^\/ui\/jobs\/([^/]+)\/candidates\/(\d+)$/, candidatePage],
  [/^\/ui\/workers$/, workersPage],
];

let me = null;

async function render() {
  const current = newPage();
  banner(null);
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    showError(new ApiError(404, `there is no page ${path}`));
    return;
  }
  const signedIn = Boolean(token());
  $("#nav").hidden = !signedIn;
  $("#sign-out").hidden = !signedIn;
  if (!signedIn && route[1] !== loginPage) {
    navigate(`/ui/login?next=${encodeURIComponent(path + location.search)}`, true);
    return;
  }
  try {
    if (signedIn && me === null) {
      me = await request("/v1/me");
      $("#whoami").textContent = `${me.name}${me.admin ? " (admin)" : ""}`;
    }
    await route[1](current, ...path.match(route[0]).slice(1).map(decodeURIComponent));
  } catch (error) {
    if (current.alive) showError(error);
  }
}

// ------------------------------------------------------------------ login

async function loginPage() {
  me = null;
  $("#whoami").textContent = "";
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false",
                             placeholder: "knas_…", required: true });
  const error = h("p", { id: "login-error", class: "error-box", role: "alert", hidden: !notice }, notice || "");
  const submit = async (event) => {
    event.preventDefault();
    const candidate = input.value.trim();
    error.hidden = true;
    try {
      me = await request("/v1/me", { auth: candidate });
    } catch (failure) {
      error.textContent = failure.status === 401 ? `That token is not valid (${failure.message}).` : failure.message;
      error.hidden = false;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    $("#whoami").textContent = `${me.name}${me.admin ? " (admin)" : ""}`;
    const next = new URLSearchParams(location.search).get("next");
    navigate(next && next.startsWith("/ui/") && !next.startsWith("/ui/login") ? next : "/ui/jobs", true);
  };
  fill(main(), h("section", { class: "login card" },
    h("h1", {}, "Sign in"),
    h("form", { id: "login-form", onsubmit: submit },
      h("label", { for: "token" }, "API token"),
      input,
      h("button", { id: "login-button", type: "submit" }, "Sign in")),
    error,
    h("p", { class: "muted" }, "Tokens come from ", h("code", {}, "knas users add NAME"),
      "; an embedded ", h("code", {}, "knas serve"), " writes the local admin's token to ",
      h("code", {}, "$KNAS_HOME/token"), ". The token is kept in this tab only (sessionStorage).")));
  input.focus();
}

// ------------------------------------------------------------------ jobs

async function jobsPage(current) {
  const params = new URLSearchParams(location.search);
  const state = { status: params.get("status") || "", owner: params.get("owner") || "",
                  offset: Math.max(0, Number(params.get("offset")) || 0) };
  const statusSelect = h("select", { id: "status-filter" }, h("option", { value: "" }, "all states"),
    JOB_STATES.map((s) => h("option", { value: s, selected: s === state.status }, s)));
  const ownerInput = me.admin ? h("input", { id: "owner-filter", placeholder: "owner", value: state.owner }) : null;
  const body = h("tbody");
  const info = h("span", { id: "jobs-count", class: "muted" });
  const prev = h("button", { id: "jobs-prev", type: "button" }, "← Newer");
  const next = h("button", { id: "jobs-next", type: "button" }, "Older →");
  const go = (changes) => {
    const merged = { ...state, ...changes };
    const query = new URLSearchParams();
    if (merged.status) query.set("status", merged.status);
    if (merged.owner) query.set("owner", merged.owner);
    if (merged.offset) query.set("offset", merged.offset);
    navigate(`/ui/jobs${query.toString() ? "?" + query : ""}`);
  };
  statusSelect.addEventListener("change", () => go({ status: statusSelect.value, offset: 0 }));
  if (ownerInput) ownerInput.addEventListener("change", () => go({ owner: ownerInput.value.trim(), offset: 0 }));
  prev.addEventListener("click", () => go({ offset: Math.max(0, state.offset - PAGE_SIZE) }));
  next.addEventListener("click", () => go({ offset: state.offset + PAGE_SIZE }));

  fill(main(), h("section", {},
    h("div", { class: "row" }, h("h1", {}, "Jobs"), h("span", { class: "spacer" }),
      h("a", { class: "button", href: "/ui/new", "data-link": true, id: "new-job-link" }, "New job")),
    h("div", { class: "row filters" }, h("label", {}, "Status ", statusSelect),
      ownerInput && h("label", {}, "Owner ", ownerInput), h("span", { class: "spacer" }), info, prev, next),
    h("table", { id: "jobs-table", class: "data" },
      h("thead", {}, h("tr", {}, ["Job", "Status", "Progress", "Candidates", "Best score", "Accuracy",
                                  me.admin ? "Owner" : null, "Created"].filter(Boolean).map((t) => h("th", {}, t)))),
      body)));

  await repeat(current, 3000, async () => {
    const query = new URLSearchParams({ limit: PAGE_SIZE, offset: state.offset });
    if (state.status) query.set("status", state.status);
    if (state.owner) query.set("owner", state.owner);
    const { data, count } = await request(`/v1/jobs?${query}`);
    if (!current.alive) return false;
    info.textContent = count ? `${int(state.offset + 1)}–${int(state.offset + data.length)} of ${int(count)}` : "";
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + data.length >= count;
    fill(body, data.length ? data.map(jobRow) : h("tr", {}, h("td", { colspan: 8, class: "muted empty" },
      state.status || state.offset ? "No jobs match." : "No jobs yet: submit one with “New job”.")));
    return data.some((job) => ACTIVE.has(job.status));  // keep refreshing while something runs
  });
}

function jobRow(job) {
  const winner = job.result && job.result.winner;
  const link = h("a", { href: `/ui/jobs/${job.id}`, "data-link": true, title: job.id }, shortId(job.id));
  return h("tr", { class: "job-row", "data-id": job.id, "data-status": job.status },
    h("td", { class: "mono" }, link),
    h("td", {}, statusBadge(job.status)),
    h("td", { class: "progress-cell" }, progressBar(jobFraction(job))),
    h("td", { class: "num" }, int(job.n_candidates)),
    h("td", { class: "num" }, winner ? num(winner.score) : dash),
    h("td", { class: "num" }, winner && winner.valid_acc != null ? pct(winner.valid_acc) : dash),
    me.admin ? h("td", {}, job.owner || dash) : null,
    h("td", { title: job.created_at || "" }, ago(job.created_at)));
}

// ------------------------------------------------------------------ new job

async function newJobPage(current) {
  const [spaces, proxies, datasets] = await Promise.all(
    ["/v1/spaces", "/v1/proxies", "/v1/datasets"].map((path) => request(path)));
  if (!current.alive) return;
  const select = (id, items, chosen) => h("select", { id },
    items.map((item) => h("option", { value: item.name, selected: item.name === chosen }, item.name)));
  const field = (label, input, hint) => h("label", { class: "field" }, h("span", {}, label), input,
                                         hint ? h("small", { class: "muted" }, hint) : null);
  const number = (id, value, min, max) => h("input", { id, type: "number", value, min, max, required: true });
  const optional = (id, placeholder) => h("input", { id, type: "number", min: 1, step: 1, placeholder });
  const present = datasets.filter((d) => d.present);
  const final = h("select", { id: "f-final" }, ["none", "train", "benchmark"].map((m) =>
    h("option", { value: m, selected: m === "train" }, m)));
  const epochs = number("f-epochs", 2, 1, 200);
  const error = h("p", { id: "form-error", class: "error-box", role: "alert", hidden: true });
  const form = h("form", { id: "new-job-form", class: "card form-grid" },
    field("Search space", select("f-space", spaces, "nats-tss")),
    field("Dataset", select("f-dataset", present, "digits"), "datasets whose files are on this server"),
    field("Proxy", select("f-proxy", proxies, "ensemble")),
    field("Candidates", h("select", { id: "f-strategy" }, [["random", "random sample"], ["evolution", "evolution"]]
      .map(([v, t]) => h("option", { value: v }, t))), "evolution breeds generations from the fittest"),
    field("Random candidates", number("f-n", 50, 1, 1000000), "random: how many; evolution: generation 0"),
    field("Generations", number("f-generations", 5, 1, 1000), "evolution only: generations bred after the first"),
    field("Children", number("f-children", 20, 1, 10000), "evolution only: new archs per generation"),
    field("Probe batch", number("f-probe", 64, 1, 4096), "samples each candidate is scored on"),
    field("Repeats", number("f-repeats", 1, 1, 8), "scores per candidate (own batch and init); ranks by the mean"),
    field("Top-k", number("f-topk", 5, 0, 1000), "candidates passed to the final stage"),
    field("Final stage", final),
    field("Epochs", epochs, "for final stage “train”"),
    field("Seed", number("f-seed", 0, 0, 2147483647)),
    field("Priority", number("f-priority", 0, 0, 9), "0 … 9, 9 runs first"),
    field("Max parameters", optional("f-max-params", "no limit"), "budget: larger archs are never candidates"),
    field("Max FLOPs (MACs)", optional("f-max-flops", "no limit"), "budget: multiply-accumulates per sample"),
    h("div", { class: "actions" }, h("button", { id: "submit-job", type: "submit" }, "Submit job")));
  const value = (id) => $(`#${id}`, form).value;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const mode = final.value;
    const spec = {
      space: value("f-space"), dataset: value("f-dataset"),
      candidates: value("f-strategy") === "evolution"
        ? { strategy: "evolution", population: Number(value("f-n")), generations: Number(value("f-generations")),
            children: Number(value("f-children")) }
        : { strategy: "random", n: Number(value("f-n")) },
      proxy: { name: value("f-proxy"), batch_size: Number(value("f-probe")), repeats: Number(value("f-repeats")) },
      top_k: Number(value("f-topk")), seed: Number(value("f-seed")), priority: Number(value("f-priority")),
      final: mode === "train" ? { mode, epochs: Number(epochs.value) } : { mode },
    };
    const budget = (id) => (value(id).trim() === "" ? null : Number(value(id)));
    if (budget("f-max-params") !== null || budget("f-max-flops") !== null) {
      spec.constraints = { max_params: budget("f-max-params"), max_flops: budget("f-max-flops") };
    }
    try {
      const job = await request("/v1/jobs", { method: "POST", body: spec });
      navigate(`/ui/jobs/${job.id}`);
    } catch (failure) {
      if (failure.status === 401 || failure.status === 403) return showError(failure);
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
  fill(main(), h("section", {}, h("h1", {}, "New job"), form, error));
}

// ------------------------------------------------------------------ one job

async function jobPage(current, jobId) {
  const job = await request(`/v1/jobs/${encodeURIComponent(jobId)}`);
  if (!current.alive) return;
  const view = {
    header: h("div", { class: "row" }), progress: h("div", { id: "progress" }), timings: h("div", { id: "timings" }),
    result: h("div", { id: "result" }), histogram: h("div", { id: "histogram", class: "plot" }),
    curves: h("div", { id: "curves", class: "plot" }), scatter: h("div", { id: "scatter", class: "plot" }),
    candidates: h("div", { id: "candidates" }), actions: h("div", { class: "row actions" }),
    generations: h("div", { id: "generations", class: "plot" }),
  };
  const evolution = job.spec.candidates && job.spec.candidates.strategy === "evolution";
  const cancel = h("button", { id: "cancel-button", type: "button", class: "danger" }, "Cancel job");
  const actionError = h("span", { id: "action-error", class: "error-text", role: "alert" });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      update(await request(`/v1/jobs/${job.id}/cancel`, { method: "POST" }));
    } catch (failure) {
      actionError.textContent = failure.message;
    }
  });
  const downloadButton = (format) => {
    const button = h("button", { type: "button", id: `download-${format}` }, `Download ${format.toUpperCase()}`);
    button.addEventListener("click", async () => {
      actionError.textContent = "";
      try { await download(job.id, format); } catch (failure) { actionError.textContent = failure.message; }
    });
    return button;
  };
  fill(view.actions, cancel, downloadButton("csv"), downloadButton("json"), actionError);
  const metric = h("select", { id: "curve-metric" }, [["valid_acc", "valid accuracy"], ["train_acc", "train accuracy"],
    ["valid_loss", "valid loss"], ["train_loss", "train loss"]].map(([v, t]) => h("option", { value: v }, t)));

  fill(main(), h("section", { class: "job", "data-id": job.id },
    view.header, view.actions,
    h("div", { class: "grid two" },
      h("div", { class: "card" }, h("h2", {}, "Progress"), view.progress, h("h3", {}, "Stages"), view.timings),
      h("div", { class: "card" }, h("h2", {}, "Result"), view.result)),
    h("div", { class: "grid two" },
      h("div", { class: "card" }, h("h2", {}, "Proxy scores"), view.histogram),
      h("div", { class: "card" }, h("h2", {}, "Score vs trained accuracy"), view.scatter)),
    evolution ? h("div", { class: "card" }, h("h2", {}, "Fitness per generation"), view.generations) : null,
    h("div", { class: "card" }, h("div", { class: "row" }, h("h2", {}, "Top-k training curves"),
      h("span", { class: "spacer" }), metric), view.curves),
    h("div", { class: "card" }, h("h2", {}, "Ranked candidates"), view.candidates)));

  const table = candidateTable(current, job.id, view.candidates);
  let trainings = null;
  let seen = "";
  metric.addEventListener("change", () => trainings && drawCurves(view.curves, trainings, metric.value));

  function update(latest) {
    Object.assign(job, latest);
    cancel.disabled = !ACTIVE.has(job.status);
    const badge = statusBadge(job.status);
    badge.id = "job-status";
    fill(view.header, h("h1", {}, "Job ", h("span", { class: "mono", title: job.id }, shortId(job.id))), badge,
      h("span", { class: "muted" }, `${job.space} · ${job.dataset} · ${job.proxy} · ${int(job.n_candidates)} candidates`
        + ` · top-${job.top_k} ${job.spec.final ? job.spec.final.mode : ""}`
        + (job.owner ? ` · owner ${job.owner}` : "") + ` · created ${ago(job.created_at)}`));
    drawProgress(view.progress, job);
    drawTimings(view.timings, job);
    drawResult(view.result, job);
  }

  const refresh = async () => {
    update(await request(`/v1/jobs/${job.id}`));
    const p = job.progress;
    const key = [job.status, p.scored, p.failed, p.trained, p.training, p.training_failed].join("/");
    if (key !== seen) {  // only what changed is fetched again
      seen = key;
      const [histogram, trained] = await Promise.all([
        request(`/v1/jobs/${job.id}/histogram?bins=30`), request(`/v1/jobs/${job.id}/trainings`)]);
      trainings = trained;
      if (!current.alive) return false;
      drawHistogram(view.histogram, histogram);
      if (evolution) drawGenerations(view.generations, await request(`/v1/jobs/${job.id}/generations`));
      drawCurves(view.curves, trainings, metric.value);
      drawScatter(view.scatter, trainings);
      await table.load();
    } else if (trainings && trainings.data.some((t) => t.status === "running")) {
      trainings = await request(`/v1/jobs/${job.id}/trainings`);  // epochs arrive without count changes
      drawCurves(view.curves, trainings, metric.value);
    }
    return ACTIVE.has(job.status);
  };
  // Pushed while the job runs: redraw when its event stream says something changed; poll when it cannot.
  if (!(await refresh()) || !current.alive) return;
  const followed = await followEvents(current, job.id, refresh);
  if (!followed && current.alive) await repeat(current, POLL_MS, refresh);
}

// A job's server-sent events (GET /v1/jobs/{id}/events), read with fetch: EventSource cannot send the token.
// Calls onChange after each read that brought events. Resolves true when the job ended (or the page went),
// false when the stream cannot be had (an older server, a proxy, an outage): the caller polls instead.
async function followEvents(current, jobId, onChange) {
  let lastId = null;
  while (current.alive) {
    const controller = new AbortController();
    const guard = setInterval(() => { if (!current.alive) controller.abort(); }, 500);
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;  // resume where the last connection stopped
      const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`,
                                   { headers, cache: "no-store", signal: controller.signal });
      if (response.status === 204) return true;  // the job's end was already seen
      if (!response.ok || !response.body) return false;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const blocks = buffer.split(/\r?\n\r?\n/);
        buffer = blocks.pop();
        let changed = false;
        let ended = false;
        for (const block of blocks) {
          let kind = "message";
          let data = false;
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith("id:")) lastId = line.slice(3).trim();
            else if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data = true;
          }
          if (!data) continue;  // a keep-alive comment or the retry hint
          changed = true;
          if (kind === "end") ended = true;
        }
        if (changed && current.alive) await onChange();
        if (ended) return true;
      }
    } catch (error) {
      return !current.alive;
    } finally {
      clearInterval(guard);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));  // closed at its time limit: reconnect
  }
  return true;
}

function drawProgress(el, job) {
  const p = job.progress;
  const rows = [h("div", { class: "progress-row" }, h("span", {}, "Overall"),
                  progressBar(jobFraction(job), undefined, "job-progress"))];
  rows.push(h("div", { class: "progress-row" }, h("span", {}, "Scoring"),
    progressBar(p.candidates ? (p.scored + p.failed) / p.candidates : 0,
                `${int(p.scored)} scored${p.failed ? `, ${int(p.failed)} failed` : ""} of ${int(p.candidates)}`)));
  if (job.spec.final && job.spec.final.mode !== "none" && job.top_k) {
    rows.push(h("div", { class: "progress-row" }, h("span", {}, "Training"),
      progressBar((p.trained + p.training_failed) / job.top_k,
                  `${p.trained} trained${p.training_failed ? `, ${p.training_failed} failed` : ""} of ${job.top_k}`)));
  }
  fill(el, rows, h("p", { id: "progress-text", class: "muted" }, `${Math.floor(jobFraction(job) * 100)} %`));
}

function drawTimings(el, job) {
  const stages = Object.entries(job.timings || {});
  if (!stages.length) return fill(el, h("p", { class: "muted" }, job.status === "queued" ? "waiting in the queue" : dash));
  fill(el, h("table", { class: "data compact", id: "timings-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Stage"), h("th", {}, "Started"), h("th", {}, "Seconds"))),
    h("tbody", {}, stages.map(([stage, t]) => h("tr", {}, h("td", {}, stage),
      h("td", { title: t.started || "" }, ago(t.started)),
      h("td", { class: "num" }, t.seconds !== undefined && t.seconds !== null ? secs(t.seconds)
        : h("em", {}, "running")))))));
}

function drawResult(el, job) {
  const parts = [];
  if (job.error) parts.push(h("p", { class: "error-box", id: "job-error" }, job.error));
  const result = job.result;
  if (!result) {
    parts.push(h("p", { class: "muted" }, ACTIVE.has(job.status) ? "Not finished yet." : "No result."));
    return fill(el, parts);
  }
  const winner = result.winner;
  if (winner) {
    parts.push(h("dl", { class: "facts", id: "winner" },
      h("dt", {}, "Winner"), h("dd", {}, h("a", { href: `/ui/jobs/${job.id}/candidates/${winner.candidate_id}`,
                                                 "data-link": true }, `#${winner.rank} (index ${winner.arch_index})`)),
      h("dt", {}, "Arch"), h("dd", { class: "mono small" }, winner.arch),
      h("dt", {}, "Score"), h("dd", {}, num(winner.score)),
      h("dt", {}, "Params"), h("dd", {}, int(winner.params)),
      winner.valid_acc != null ? [h("dt", {}, "Valid acc"), h("dd", {}, pct(winner.valid_acc))] : null,
      winner.test_acc != null ? [h("dt", {}, "Test acc"), h("dd", {}, pct(winner.test_acc))] : null,
      h("dt", {}, "Selected by"), h("dd", {}, result.selected_by || dash)));
  }
  if (result.validity) {
    const v = result.validity;
    parts.push(h("p", { id: "validity" }, v.available ? `Kendall τ ${num(v.kendall, 3)} (params: ${num(v.params_kendall, 3)}), n = ${v.n}. `
      : "", h("span", { class: "muted" }, v.note || "")));
  }
  if (result.cut && result.cut.near_ties !== null && result.cut.near_ties !== undefined) {
    parts.push(h("p", { id: "cut", class: result.cut.near_ties_total ? "warn-text" : "muted" }, result.cut.note));
  }
  if (result.export) parts.push(modelSection(job));
  if (result.compute) {
    const c = result.compute;
    parts.push(h("p", { class: "muted", id: "compute" }, `Device ${c.device}; scoring ${secs(c.scoring_seconds)}, ` +
      `training ${secs(c.training_seconds)}; energy ${c.energy_joules === null || c.energy_joules === undefined
        ? c.energy_source || "unknown" : `${num(c.energy_joules, 3)} J`}.`));
  }
  fill(el, parts);
}

// The exported winner: its model card (fetched once) and a download of the zip (needs the token, so a Blob).
const cards = new Map();
function modelSection(job) {
  const exp = job.result.export;
  const box = h("div", { id: "model" }, h("h3", {}, "Model"));
  if (exp.status !== "ready") {
    box.append(h("p", { class: "muted", id: "model-unavailable" }, `No exported model: ${exp.reason || exp.status}`));
    return box;
  }
  const error = h("span", { class: "error-text", role: "alert" });
  const button = h("button", { type: "button", id: "download-model" }, `Download model (${int(exp.bytes)} bytes, zip)`);
  button.addEventListener("click", async () => {
    error.textContent = "";
    try {
      const blob = await (await request(`/v1/jobs/${job.id}/export`, { raw: true })).blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `knas-${job.id}-model.zip` });
      document.body.append(link); link.click(); link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (failure) { error.textContent = failure.message; }
  });
  const facts = h("dl", { class: "facts", id: "model-card" });
  box.append(h("div", { class: "row" }, button, error), facts);
  const show = (card) => fill(facts,
    h("dt", {}, "Files"), h("dd", { class: "small" }, exp.files.join(", ")),
    h("dt", {}, "Input"), h("dd", {}, `${card.input.channels}×${card.input.height}×${card.input.width}, mean ` +
      `${card.input.preprocessing.mean.map((m) => num(m, 3)).join("/")}, std ${card.input.preprocessing.std.map((m) => num(m, 3)).join("/")}`),
    h("dt", {}, "Classes"), h("dd", { class: "small" }, card.classes.join(", ")),
    h("dt", {}, "Params / FLOPs"), h("dd", {}, `${int(card.params)} / ${int(card.flops)}`),
    h("dt", {}, "Test acc"), h("dd", { id: "model-test-acc" }, pct(card.metrics.test_acc)),
    h("dt", {}, "Dataset"), h("dd", { class: "small" }, `${card.dataset.name} (fingerprint ${(card.dataset.fingerprint || "built-in").slice(0, 16)})`),
    h("dt", {}, "Reproduce"), h("dd", { class: "mono small" }, card.reproduce));
  if (cards.has(job.id)) show(cards.get(job.id));
  else request(`/v1/jobs/${job.id}/card`).then((card) => { cards.set(job.id, card); show(card); })
    .catch((failure) => { error.textContent = failure.message; });
  return box;
}

function candidateTable(current, jobId, el) {
  let offset = 0;
  const body = h("tbody");
  const info = h("span", { id: "candidates-count", class: "muted" });
  const prev = h("button", { id: "candidates-prev", type: "button" }, "← Better");
  const next = h("button", { id: "candidates-next", type: "button" }, "Worse →");
  const load = async () => {
    const { data, count } = await request(`/v1/jobs/${jobId}/candidates?limit=${PAGE_SIZE}&offset=${offset}`);
    if (!current.alive) return;
    info.textContent = count ? `${int(offset + 1)}–${int(offset + data.length)} of ${int(count)}` : "";
    prev.disabled = offset === 0;
    next.disabled = offset + data.length >= count;
    fill(body, data.map((c) => {
      const href = `/ui/jobs/${jobId}/candidates/${c.id}`;
      const open = (event) => { if (!event.target.closest("a")) navigate(href); };  // links navigate themselves
      return h("tr", { class: "candidate-row clickable", "data-id": c.id, onclick: open },
        h("td", { class: "num" }, h("a", { href, "data-link": true }, c.rank ?? dash)),
        h("td", { class: "num" }, c.arch_index),
        h("td", { class: "mono small arch" }, c.arch),
        h("td", {}, c.status),
        h("td", { class: "num" }, num(c.score)),
        h("td", { class: "num" }, int(c.params)),
        h("td", { class: "num" }, pct(c.valid_acc)),
        h("td", {}, c.training_status || ""));
    }));
  };
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE_SIZE); load().catch(showError); });
  next.addEventListener("click", () => { offset += PAGE_SIZE; load().catch(showError); });
  fill(el, h("div", { class: "row" }, h("span", { class: "spacer" }), info, prev, next),
    h("table", { id: "candidates-table", class: "data" },
      h("thead", {}, h("tr", {}, ["Rank", "Index", "Arch", "Status", "Score", "Params", "Valid acc", "Training"]
        .map((t) => h("th", {}, t)))), body));
  return { load };
}

// ------------------------------------------------------------------ plots (inline SVG)

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function padded([lo, hi], share = 0.05) {
  if (hi === lo) return [lo - (Math.abs(lo) || 1) * 0.5, hi + (Math.abs(hi) || 1) * 0.5];
  const pad = (hi - lo) * share;
  return [lo - pad, hi + pad];
}

// Axes in a W×H viewBox (1 unit ≈ 1 CSS pixel in a half-width card; `wide` for a full-width one);
// returns the SVG and scales from data to pixels.
function plotFrame({ x, y, xLabel, yLabel, xTicks, yTicks, wide = false }) {
  const W = wide ? 1220 : 640, H = wide ? 300 : 260, left = 62, right = 14, top = 12, bottom = 44;
  const sx = (v) => left + ((v - x[0]) / (x[1] - x[0] || 1)) * (W - left - right);
  const sy = (v) => H - bottom - ((v - y[0]) / (y[1] - y[0] || 1)) * (H - top - bottom);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${yLabel} by ${xLabel}` });
  const grid = svg("g", { class: "axes" });
  for (const t of yTicks || niceTicks(y[0], y[1])) {
    grid.append(svg("line", { x1: left, x2: W - right, y1: sy(t), y2: sy(t), class: "gridline" }),
                svg("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end" }, tickLabel(t)));
  }
  for (const t of xTicks || niceTicks(x[0], x[1])) {
    grid.append(svg("line", { x1: sx(t), x2: sx(t), y1: H - bottom, y2: H - bottom + 4, class: "tick" }),
                svg("text", { x: sx(t), y: H - bottom + 17, "text-anchor": "middle" }, tickLabel(t)));
  }
  grid.append(svg("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }),
    svg("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" }),
    svg("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle", class: "label" }, xLabel),
    svg("text", { x: 14, y: (top + H - bottom) / 2, "text-anchor": "middle", class: "label",
                  transform: `rotate(-90 14 ${(top + H - bottom) / 2})` }, yLabel));
  root.append(grid);
  return { root, sx, sy, W, H, left, right, top, bottom };
}

function tickLabel(t) {
  const a = Math.abs(t);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return t.toExponential(1);
  return String(Number(t.toPrecision(4)));
}

function placeholder(el, text) {
  fill(el, h("p", { class: "muted placeholder" }, text));
}

function drawHistogram(el, hist) {
  if (!hist.count) return placeholder(el, "No scores yet.");
  const log = hist.scale === "log";
  const t = log ? Math.log10 : (v) => v;  // plot in log10 of the score when the server binned that way
  const lo = t(hist.bins[0].lo), hi = t(hist.bins[hist.bins.length - 1].hi);
  const x = padded([lo, hi], lo === hi ? 0 : 0.02);
  const top = Math.max(...hist.bins.map((b) => b.count));
  const frame = plotFrame({ x, y: [0, top * 1.08], xLabel: `${hist.proxy} score${log ? " (log10)" : ""}`,
                            yLabel: "candidates", yTicks: niceTicks(0, top, 4).filter((v) => Number.isInteger(v)) });
  const bars = svg("g", { class: "bars" });
  for (const b of hist.bins) {
    const x0 = lo === hi ? frame.sx(lo) - 20 : frame.sx(t(b.lo)) + 0.5;
    const x1 = lo === hi ? frame.sx(lo) + 20 : frame.sx(t(b.hi)) - 0.5;
    bars.append(svg("rect", { class: "hbar", x: x0, width: Math.max(1, x1 - x0), y: frame.sy(b.count),
                              height: frame.sy(0) - frame.sy(b.count) },
      svg("title", {}, `${num(b.lo)} … ${num(b.hi)}: ${b.count}`)));
  }
  frame.root.append(bars);
  if (hist.threshold !== null && hist.threshold !== undefined && (!log || hist.threshold > 0)) {
    const tx = frame.sx(t(hist.threshold));
    frame.root.append(svg("line", { class: "threshold", x1: tx, x2: tx, y1: frame.top, y2: frame.sy(0) }),
      svg("text", { class: "threshold-label", x: tx + 4, y: frame.top + 12 }, "top-k cut"));
  }
  fill(el, frame.root, h("p", { class: "muted small" },
    `${int(hist.count)} scores in ${hist.bins.length} bins${log ? " of equal width in log10" : ""}` +
    (hist.missing ? `; ${int(hist.missing)} not scored yet or failed` : "")));
}

function curvePoints(training, metric) {
  return training.epochs.map((e, i) => [e.epoch ?? i + 1, e[metric]]).filter(([, v]) => v !== null && v !== undefined);
}

function drawCurves(el, trainings, metric) {
  const series = trainings.data.map((t) => ({ t, points: curvePoints(t, metric) })).filter((s) => s.points.length);
  if (!series.length) {
    return placeholder(el, trainings.data.length ? "No epoch finished yet." : "No final-stage training for this job (yet).");
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(...xs);
  const frame = plotFrame({ x: [Math.min(1, ...xs) - 0.2, xMax + 0.2], y: padded([Math.min(...ys), Math.max(...ys)]),
                            xLabel: "epoch", yLabel: metric.replace("_", " "), wide: true,
                            xTicks: niceTicks(1, xMax, Math.min(xMax, 8)).filter((t) => Number.isInteger(t)) });
  const legend = h("ul", { class: "legend" });
  series.forEach(({ t, points }, i) => {
    const color = COLORS[i % COLORS.length];
    const d = points.map(([x, y], j) => `${j ? "L" : "M"}${frame.sx(x).toFixed(1)},${frame.sy(y).toFixed(1)}`).join("");
    const group = svg("g", { class: "series", "data-candidate": t.candidate_id },
      svg("path", { class: "curve", d, stroke: color }),
      points.map(([x, y]) => svg("circle", { class: "marker", cx: frame.sx(x), cy: frame.sy(y), r: 3.5, fill: color },
        svg("title", {}, `#${t.rank} epoch ${x}: ${num(y)}`))));
    frame.root.append(group);
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = color;
    legend.append(h("li", {}, swatch, `#${t.rank} · index ${t.arch_index} · ${t.status}`));
  });
  fill(el, frame.root, legend);
}

function drawGenerations(el, view) {
  const points = view.data.filter((g) => g.best !== null);
  if (!points.length) return placeholder(el, "Appears once a generation is scored (for the ensemble: once it is bred from).");
  const ys = points.flatMap((g) => [g.best, g.median]);
  const last = Math.max(...points.map((g) => g.generation));
  const frame = plotFrame({ x: [-0.3, last + 0.3], y: padded([Math.min(...ys), Math.max(...ys)]), xLabel: "generation",
                            yLabel: `${view.proxy} score`, wide: true,
                            xTicks: niceTicks(0, Math.max(last, 1), Math.min(last + 1, 8)).filter((t) => Number.isInteger(t)) });
  const legend = h("ul", { class: "legend" });
  [["best", COLORS[0]], ["median", COLORS[1]]].forEach(([key, color]) => {
    const d = points.map((g, j) => `${j ? "L" : "M"}${frame.sx(g.generation).toFixed(1)},${frame.sy(g[key]).toFixed(1)}`).join("");
    frame.root.append(svg("g", { class: `series ${key}` }, svg("path", { class: "curve", d, stroke: color }),
      points.map((g) => svg("circle", { class: "marker", cx: frame.sx(g.generation), cy: frame.sy(g[key]), r: 3.5, fill: color },
        svg("title", {}, `generation ${g.generation}: ${key} ${num(g[key])} (${g.scored} of ${g.candidates} scored)`)))));
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = color;
    legend.append(h("li", {}, swatch, key));
  });
  fill(el, frame.root, legend);
}

function drawScatter(el, trainings) {
  const points = trainings.data.filter((t) => t.score !== null && t.valid_acc !== null);
  if (!points.length) return placeholder(el, "Appears once top-k candidates have a trained (or looked-up) accuracy.");
  const scores = points.map((p) => p.score);
  const log = Math.min(...scores) > 0 && Math.max(...scores) / Math.min(...scores) >= 100;
  const t = log ? Math.log10 : (v) => v;
  const frame = plotFrame({ x: padded([t(Math.min(...scores)), t(Math.max(...scores))]),
                            y: padded([Math.min(...points.map((p) => p.valid_acc)), Math.max(...points.map((p) => p.valid_acc))]),
                            xLabel: `proxy score${log ? " (log10)" : ""}`, yLabel: "valid accuracy (%)" });
  frame.root.append(svg("g", { class: "points" }, points.map((p) =>
    svg("circle", { class: "point", cx: frame.sx(t(p.score)), cy: frame.sy(p.valid_acc), r: 5 },
      svg("title", {}, `#${p.rank} index ${p.arch_index}: score ${num(p.score)}, ${pct(p.valid_acc)}`)))));
  fill(el, frame.root, h("p", { id: "kendall" }, trainings.kendall === null
    ? `Kendall τ needs two or more distinct points (n = ${trainings.n}).`
    : `Kendall τ = ${num(trainings.kendall, 3)} over n = ${trainings.n} trained candidates`));
}

// ------------------------------------------------------------------ one candidate

// NAS-Bench-201 arch strings: "|op~0|+|op~0|op~1|+|..." — node i's inputs, one group per node.
function cellEdges(arch) {
  if (!/^\|.*\|$/.test(arch) || !arch.includes("~")) return null;
  return arch.split("+").flatMap((group, i) => group.split("|").filter(Boolean).map((edge) => {
    const [op, from] = edge.split("~");
    return { to: i + 1, from: Number(from), op };
  }));
}

async function candidatePage(current, jobId, candidateId) {
  const c = await request(`/v1/jobs/${encodeURIComponent(jobId)}/candidates/${candidateId}`);
  if (!current.alive) return;
  const edges = cellEdges(c.arch);
  const scores = Object.entries(c.scores || {});
  const curve = h("div", { id: "candidate-curve", class: "plot" });
  fill(main(), h("section", { class: "candidate" },
    h("p", {}, h("a", { href: `/ui/jobs/${jobId}`, "data-link": true }, `← Job ${shortId(jobId)}`)),
    h("h1", {}, `Candidate #${c.rank ?? dash} `, h("span", { class: "muted" }, `(index ${c.arch_index})`)),
    h("pre", { id: "candidate-arch", class: "arch-box" }, c.arch),
    h("div", { class: "grid two" },
      h("div", { class: "card" }, h("h2", {}, "Facts"), h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, c.status),
        h("dt", {}, "Score"), h("dd", { id: "candidate-score" }, num(c.score, 6),
          c.score_std === null || c.score_std === undefined ? "" : ` ± ${num(c.score_std, 3)} (over repeats)`),
        h("dt", {}, "Params"), h("dd", { id: "candidate-params" }, int(c.params)),
        h("dt", {}, "Scoring time"), h("dd", {}, secs(c.proxy_seconds)),
        h("dt", {}, "Energy"), h("dd", {}, c.energy_j === null ? "unknown" : `${num(c.energy_j, 3)} J`),
        h("dt", {}, "Worker"), h("dd", {}, c.worker || dash),
        h("dt", {}, "Scorer"), h("dd", {}, c.scorer_version || dash),
        c.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, c.error)] : null)),
      h("div", { class: "card" }, h("h2", {}, "Proxy scores"), scores.length
        ? h("table", { class: "data compact", id: "proxy-scores" },
            h("tbody", {}, scores.map(([name, v]) => h("tr", {}, h("td", {}, name),
              h("td", { class: "num" }, typeof v === "number" ? num(v, 6) : JSON.stringify(v))))))
        : h("p", { class: "muted" }, "Not scored yet."),
        edges ? [h("h3", {}, "Cell"), h("table", { class: "data compact", id: "cell-edges" },
          h("thead", {}, h("tr", {}, h("th", {}, "Edge"), h("th", {}, "Operation"))),
          h("tbody", {}, edges.map((e) => h("tr", {}, h("td", {}, `node ${e.from} → node ${e.to}`),
                                                   h("td", { class: "mono" }, e.op)))))] : null)),
    h("div", { class: "card" }, h("h2", {}, "Training"), curve)));
  const t = c.training;
  if (!t) return placeholder(curve, "Not in the top-k: this candidate was not trained.");
  drawCurves(curve, { data: [t] }, "valid_acc");
  curve.append(h("p", { class: "muted" }, `${t.mode} · ${t.status} · valid ${pct(t.valid_acc)} · test ${pct(t.test_acc)}`
    + ` · ${secs(t.seconds)}` + (t.error ? ` · ${t.error}` : "")));
}

// ------------------------------------------------------------------ workers

async function workersPage(current) {
  const body = h("tbody");
  fill(main(), h("section", {}, h("h1", {}, "Workers"),
    h("p", { class: "muted" }, "Celery workers heartbeat into the store; an embedded ",
      h("code", {}, "knas serve"), " runs jobs in its own process and lists none."),
    h("table", { id: "workers-table", class: "data" },
      h("thead", {}, h("tr", {}, ["Worker", "Host", "Device", "Doing", "Last heartbeat", "Up since", ""]
        .map((t) => h("th", {}, t)))), body)));
  await repeat(current, 5000, async () => {
    const workers = await request("/v1/workers");
    if (!current.alive) return false;
    fill(body, workers.length ? workers.map((w) => h("tr", { class: "worker-row", "data-name": w.name },
      h("td", { class: "mono" }, w.name), h("td", {}, w.hostname), h("td", {}, w.device),
      h("td", {}, w.current_job ? h("a", { href: `/ui/jobs/${w.current_job}`, "data-link": true, class: "mono" },
        `job ${shortId(w.current_job)}`) : h("span", { class: "muted" }, "idle")),
      h("td", { title: w.last_seen }, ago(w.last_seen)), h("td", { title: w.started_at }, ago(w.started_at)),
      h("td", {}, h("span", { class: `badge ${w.alive ? "alive" : "dead"}` }, w.alive ? "alive" : "silent"))))
      : h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, "No worker has reported in.")));
    return true;
  });
}

// ------------------------------------------------------------------ start

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  event.stopPropagation();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", render);
document.addEventListener("DOMContentLoaded", () => {
  $("#sign-out").addEventListener("click", () => { me = null; signOut("Signed out."); });
  render();
});
