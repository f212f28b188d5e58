// vidrec's browser UI: plain JavaScript over the service's JSON API, no build step, no other origin.
// Every string from the service is put in the page as text (textContent), never parsed as HTML.
"use strict";

const KEY_STORE = "vidrec.apiKey";  // sessionStorage: forgotten when the tab closes
const PAGE = 25;  // rows per page of users and videos
const REMOVED_SHOWN = 40;  // left-out candidates listed before "Show all"

const ADJUSTMENTS = {  // re-ranking codes (prefix before ':') and what they mean
  fresh_boost: "boosted: recently uploaded",
  creator_fatigue: "damped: the user disliked videos of this creator (weighed against their completions of it)",
  rewatch: "let back in by the re-watch policy",
  creator_cap: "creator cap (too many videos of one creator)",
  dpp: "moved by DPP diversity (positions)",
  mmr: "moved by MMR diversity (positions)",
  calibration: "moved by calibration to the user's categories (positions)",
  slate: "moved by the slate objective (positions)",
  "dpp+calibration": "moved by DPP diversity and calibration (positions)",
  "mmr+calibration": "moved by MMR diversity and calibration (positions)",
  fresh_slot: "placed to meet the fresh-video minimum",
  fair_slot: "placed to meet the small or new creators' minimum",
};
const REASONS = {  // why re-ranking left a candidate out
  seen: "the user watched, liked or disliked it already",
  disliked: "the user disliked it",
  unavailable: "removed from the platform, or not uploaded yet",
  creator_fatigue: "a creator the user recently disliked again and again, with few completions",
  creator_cap: "the slate holds enough videos of this creator",
  slate_objective: "in the pool, not picked by the slate objective (diversity, minimums)",
  below_cutoff: "scored below the pool the slate is picked from",
};

const state = { user: null, k: 10, usersOffset: 0, videosOffset: 0, removed: [], showAllRemoved: false };

// ---- small helpers ------------------------------------------------------------------------------

function $(id) {
  return document.getElementById(id);
}

/** An element with properties (attributes via `attrs`, events via `on`) and children (text or nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "attrs") {
      for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
    } else if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name === "vars") {  // CSS custom properties, set through the CSSOM (no inline style attribute)
      for (const [v, x] of Object.entries(value)) node.style.setProperty(v, String(x));
    } else {
      node[name] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

function num(value, digits = 3) {
  return value === null || value === undefined ? "\u2014" : Number(value).toFixed(digits);
}

function when(iso) {
  if (!iso) return "\u2014";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function say(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

function busy(on) {
  document.body.dataset.busy = on ? "1" : "0";
}

// ---- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** One call to the service; the key (if one was given) goes as the service expects it. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try {
    data = await answer.json();
  } catch (err) {
    data = null;
  }
  if (!answer.ok) {
    const detail = data && data.detail ? data.detail : answer.status + " " + answer.statusText;
    throw new ApiError(answer.status, detail);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) q.append(name, String(v));
  }
  return q.toString();
}

async function guarded(task) {
  busy(true);
  try {
    await task();
  } catch (err) {
    const hint = err instanceof ApiError && err.status === 401 ? " (paste a key above)" : "";
    say((err && err.message ? err.message : String(err)) + hint, "error");
  } finally {
    busy(false);
  }
}

// ---- chips --------------------------------------------------------------------------------------

function chip(text, title, kind = "") {
  return el("span", { className: "chip " + kind, title: title || "" }, text);
}

function adjustmentChip(code) {
  const name = code.split(":")[0];
  const meaning = ADJUSTMENTS[name] || "re-ranking adjustment";
  return chip(code, meaning, name === "creator_fatigue" ? "down" : name === "fresh_boost" ? "up" : "");
}

function videoCell(id, video) {
  const title = video && video.title ? video.title : null;
  const meta = video ? [video.creator_id, video.category].filter(Boolean).join(" \u00b7 ") : "";
  return el("td", { className: "video" },
    el("span", { className: "vid" }, id),
    title ? el("span", { className: "title" }, title) : null,
    meta ? el("span", { className: "muted small" }, meta) : null);
}

// ---- users --------------------------------------------------------------------------------------

async function showUser(userId) {
  state.user = userId;
  state.showAllRemoved = false;
  $("user-id").value = userId;
  if (location.hash !== "#user=" + encodeURIComponent(userId)) {
    history.replaceState(null, "", "#user=" + encodeURIComponent(userId));
  }
  const k = Math.max(1, Math.min(500, Number($("slate-k").value) || 10));
  const path = "/users/" + encodeURIComponent(userId);
  const [slate, past] = await Promise.all([
    api("GET", path + "/recommendations?" + query({ k, debug: true })),
    api("GET", path + "/history?" + query({ limit: 50 })),
  ]);
  const ids = slate.items.map((i) => i.video_id);
  const videos = ids.length ? await api("GET", "/videos?" + query({ id: ids })) : { items: [] };
  const byId = new Map(videos.items.map((v) => [v.video_id, v]));
  renderSlate(userId, slate, byId);
  renderHistory(past);
  $("user-panels").hidden = false;
}

function renderSlate(userId, slate, byId) {
  $("slate-user").textContent = userId;
  const body = clear($("slate").tBodies[0]);
  for (const item of slate.items) {
    const video = byId.get(item.video_id);
    const feedback = el("td", { className: "feedback" },
      el("button", { type: "button", className: "like", title: "post a like",
        on: { click: () => feedbackOn(item.video_id, "like") } }, "Like"),
      el("button", { type: "button", className: "dislike", title: "post a dislike",
        on: { click: () => feedbackOn(item.video_id, "dislike") } }, "Dislike"),
      el("button", { type: "button", className: "watch", title: "post a watch of the whole video",
        on: { click: () => feedbackOn(item.video_id, "watch", video ? video.duration_seconds : 60) } }, "Watch"));
    body.append(el("tr", { dataset: { videoId: item.video_id } },
      el("td", { className: "num" }, item.rank),
      videoCell(item.video_id, video),
      el("td", {}, item.sources.map((s) => chip(s, "nominated by the " + s + " generator", "source"))),
      el("td", { className: "num" }, num(item.retrieval_score)),
      el("td", { className: "num" }, el("span", { className: "pbar", vars: { "--p": Number(item.p_complete || 0) } }),
        num(item.p_complete)),
      el("td", { className: "num strong" }, num(item.score)),
      el("td", {}, item.adjustments.length ? item.adjustments.map(adjustmentChip) : el("span", { className: "muted" },
        "none")),
      feedback));
  }
  if (!slate.items.length) body.append(el("tr", {}, el("td", { colSpan: 8, className: "muted" }, "no videos to show")));
  state.removed = slate.removed || [];
  renderRemoved();
  $("slate").dataset.user = userId;
  $("slate").dataset.renders = String(Number($("slate").dataset.renders || 0) + 1);
}

function renderRemoved() {
  const removed = state.removed;
  $("removed-count").textContent = String(removed.length);
  const counts = new Map();
  for (const r of removed) counts.set(r.reason, (counts.get(r.reason) || 0) + 1);
  $("removed-reasons").textContent = counts.size
    ? "(" + [...counts].map(([reason, n]) => reason + " " + n).join(", ") + ")" : "";
  const shown = state.showAllRemoved ? removed : removed.slice(0, REMOVED_SHOWN);
  const body = clear($("removed").tBodies[0]);
  for (const r of shown) {
    body.append(el("tr", { dataset: { videoId: r.video_id, reason: r.reason } },
      el("td", { className: "vid" }, r.video_id),
      el("td", {}, chip(r.reason, REASONS[r.reason] || "", "reason")),
      el("td", {}, r.sources.map((s) => chip(s, "nominated by the " + s + " generator", "source"))),
      el("td", { className: "num" }, num(r.p_complete)),
      el("td", { className: "num" }, num(r.score))));
  }
  $("removed-more").hidden = shown.length >= removed.length;
}

function renderHistory(past) {
  $("history-total").textContent = past.known
    ? "(" + past.items.length + " of " + past.total + " videos)" : "(the service knows nothing about this user yet)";
  const body = clear($("history").tBodies[0]);
  for (const h of past.items) {
    const did = [];
    if (h.watched_at) {
      did.push(chip(h.completed_at ? "completed" : "watched", "first watch " + when(h.watched_at) +
        (h.last_watched_at && h.last_watched_at !== h.watched_at ? ", last " + when(h.last_watched_at) : ""),
        h.completed_at ? "up" : ""));
    }
    if (h.liked_at) did.push(chip("liked", "liked " + when(h.liked_at), "up"));
    if (h.disliked_at) did.push(chip("disliked", "disliked " + when(h.disliked_at), "down"));
    if (h.available === false) did.push(chip("removed", "no longer on the platform", "muted"));
    body.append(el("tr", { dataset: { videoId: h.video_id } },
      videoCell(h.video_id, h), el("td", {}, did, el("span", { className: "when muted small" }, when(h.last_at)))));
  }
  if (!past.items.length) body.append(el("tr", {}, el("td", { colSpan: 2, className: "muted" }, "no history")));
}

async function feedbackOn(videoId, event, seconds) {
  await guarded(async () => {
    const body = { user_id: state.user, video_id: videoId, event };
    if (event === "watch") body.watch_seconds = Number(seconds) || 60;
    const done = await api("POST", "/events", body);
    await showUser(state.user);
    const late = done.applied ? "" : " (stored; the online store applies it when it answers again)";
    say("Posted " + event + " of " + videoId + " for " + state.user + "; the slate below is the new one" + late);
  });
}

async function loadUsers() {
  const page = await api("GET", "/users?" + query({ offset: state.usersOffset, limit: PAGE }));
  const list = clear($("users"));
  for (const u of page.items) {
    const about = Object.entries(u.profile).map(([k, v]) => k + ": " + v).join(", ");
    list.append(el("li", {}, el("button", { type: "button", className: "chip link", title: about,
      on: { click: () => guarded(() => showUser(u.user_id)) } }, u.user_id)));
  }
  const last = Math.min(page.offset + page.items.length, page.total);
  $("users-page").textContent = page.total ? (page.offset + 1) + "\u2013" + last + " of " + page.total : "no users";
  $("users-prev").disabled = page.offset === 0;
  $("users-next").disabled = last >= page.total;
}

// ---- the catalogue ------------------------------------------------------------------------------

async function loadVideos() {
  const order = $("catalogue-order").value;
  const page = await api("GET", "/videos?" + query({ offset: state.videosOffset, limit: PAGE, order }));
  const body = clear($("videos").tBodies[0]);
  for (const v of page.items) {
    const remove = el("button", { type: "button", className: "remove", disabled: !v.available,
      on: { click: () => removeVideo(v.video_id) } }, "Remove");
    body.append(el("tr", { dataset: { videoId: v.video_id }, className: v.available ? "" : "gone" },
      videoCell(v.video_id, { title: v.title }),
      el("td", {}, v.creator_id), el("td", {}, v.category),
      el("td", {}, v.tags.map((t) => chip(t, "tag"))),
      el("td", { className: "num" }, num(v.duration_seconds, 0) + " s"),
      el("td", { className: "when" }, when(v.uploaded_at)),
      el("td", {}, v.available ? chip("available", "recommendable", "up") : chip("removed", "never recommended", "down")),
      el("td", {}, remove)));
  }
  const last = Math.min(page.offset + page.items.length, page.total);
  $("videos-page").textContent = page.total ? (page.offset + 1) + "\u2013" + last + " of " + page.total : "empty";
  $("videos-prev").disabled = page.offset === 0;
  $("videos-next").disabled = last >= page.total;
  $("videos").dataset.renders = String(Number($("videos").dataset.renders || 0) + 1);
}

async function removeVideo(videoId) {
  if (!window.confirm("Take " + videoId + " off the platform? No slate returns it again.")) return;
  await guarded(async () => {
    const done = await api("DELETE", "/videos/" + encodeURIComponent(videoId));
    await loadVideos();
    say(done.removed ? "Removed " + videoId + ": no slate returns it from now on" : videoId + " was removed already");
  });
}

async function upload(form) {
  const data = new FormData(form);
  const text = (name) => String(data.get(name) || "").trim();
  const video = {
    video_id: text("video_id"), creator_id: text("creator_id"), category: text("category"),
    tags: text("tags").split(",").map((t) => t.trim()).filter(Boolean),
    duration_seconds: Number(text("duration_seconds")),
  };
  for (const name of ["title", "language"]) if (text(name)) video[name] = text(name);
  await api("POST", "/videos", video);
  form.reset();
  $("catalogue-order").value = "newest";
  state.videosOffset = 0;
  await loadVideos();
  say("Uploaded " + video.video_id + ": it can be recommended from the next request");
}

// ---- the page -----------------------------------------------------------------------------------

function showTab(name) {
  for (const [tab, view] of [["tab-users", "users-view"], ["tab-catalogue", "catalogue-view"]]) {
    const on = tab === "tab-" + name;
    $(tab).setAttribute("aria-selected", String(on));
    $(view).hidden = !on;
  }
  if (name === "catalogue") {
    if (location.hash !== "#catalogue") history.replaceState(null, "", "#catalogue");
    guarded(loadVideos);
  } else if (state.user) {
    history.replaceState(null, "", "#user=" + encodeURIComponent(state.user));
  }
}

function showKeyState() {
  const key = sessionStorage.getItem(KEY_STORE);
  $("key-state").textContent = key ? "a key is set for this tab" : "no key: reads only";
  $("key-forget").hidden = !key;
}

async function showService() {
  try {
    const ready = await api("GET", "/ready");
    $("service-state").textContent = "model " + (ready.model_version || "(in memory)") + " \u00b7 " + ready.status;
  } catch (err) {
    $("service-state").textContent = "service: " + err.message;
  }
}

function fromHash() {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash === "catalogue") {
    showTab("catalogue");
  } else if (hash.startsWith("user=") && hash.length > 5) {
    showTab("users");
    guarded(() => showUser(hash.slice(5)));
  }
}

function start() {
  $("tab-users").addEventListener("click", () => showTab("users"));
  $("tab-catalogue").addEventListener("click", () => showTab("catalogue"));
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    showKeyState();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    showKeyState();
  });
  $("user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    say("");
    const id = $("user-id").value.trim();
    if (id) guarded(() => showUser(id));
  });
  $("users-toggle").addEventListener("click", () => {
    const list = $("users-list");
    list.hidden = !list.hidden;
    $("users-toggle").setAttribute("aria-expanded", String(!list.hidden));
    if (!list.hidden) guarded(loadUsers);
  });
  $("users-prev").addEventListener("click", () => {
    state.usersOffset = Math.max(0, state.usersOffset - PAGE);
    guarded(loadUsers);
  });
  $("users-next").addEventListener("click", () => {
    state.usersOffset += PAGE;
    guarded(loadUsers);
  });
  $("removed-more").addEventListener("click", () => {
    state.showAllRemoved = true;
    renderRemoved();
  });
  $("catalogue-order").addEventListener("change", () => {
    state.videosOffset = 0;
    guarded(loadVideos);
  });
  $("videos-prev").addEventListener("click", () => {
    state.videosOffset = Math.max(0, state.videosOffset - PAGE);
    guarded(loadVideos);
  });
  $("videos-next").addEventListener("click", () => {
    state.videosOffset += PAGE;
    guarded(loadVideos);
  });
  $("upload-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => upload(e.target));
  });
  window.addEventListener("hashchange", fromHash);
  showKeyState();
  showService();
  busy(false);
  fromHash();
}

document.addEventListener("DOMContentLoaded", start);
