"""The status page: one HTML document with inline CSS and JS, no build step, no assets.

The script fetches `status.json` (a relative URL, so the page also works behind a path
prefix such as Home Assistant ingress) and builds the DOM with textContent only: names
come from the box and are hostile input.
"""

from __future__ import annotations

import json

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sophonfog-bridge</title>
<style>
:root { --bg:#f4f5f7; --card:#fff; --ink:#1d2330; --muted:#6b7280; --line:#e3e6ea;
  --ok:#15803d; --bad:#b91c1c; --warn:#b45309; --accent:#2563eb; }
@media (prefers-color-scheme: dark) { :root { --bg:#111418; --card:#1b1f25; --ink:#e7e9ec;
  --muted:#9aa3ad; --line:#2b313a; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  background:var(--bg); color:var(--ink); }
header { display:flex; flex-wrap:wrap; gap:12px 20px; align-items:center; padding:12px 20px;
  background:var(--card); border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0 8px 0 0; }
.stat { color:var(--muted); } .stat b { color:var(--ink); }
main { display:grid; grid-template-columns: minmax(0,2fr) minmax(280px,1fr); gap:16px;
  padding:16px 20px; }
/* Below this the events table no longer fits beside the side column. */
@media (max-width: 1180px) { main { grid-template-columns: minmax(0,1fr); } }
.scroll { overflow-x:auto; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:12px 14px; margin-bottom:16px; }
h2 { font-size:15px; margin:0 0 10px; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:6px 6px; border-top:1px solid var(--line);
  vertical-align:middle; }
th { color:var(--muted); font-weight:500; border-top:none; font-size:12px; }
.thumbs { white-space:nowrap; }
.nowrap { white-space:nowrap; }
.thumbs img { width:56px; height:56px; object-fit:cover; border-radius:4px; margin-right:4px;
  background:var(--line); }
.thumbs img.scene { width:84px; }
/* break-word, not anywhere: a name breaks inside a word only when the word alone is wider
   than its box, and tables never squeeze a name column down to one character. */
.name { font-weight:600; overflow-wrap:break-word; }
.sub { color:var(--muted); font-size:12px; overflow-wrap:break-word; }
.id { overflow-wrap:break-word; }  /* long ids break after their separators (<wbr>) */
@media (min-width: 761px) { .events td.who { min-width:16em; } }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
  border:1px solid currentColor; white-space:nowrap; }
.ok, .open, .online, .employee, .vip { color:var(--ok); }
.bad, .deny, .error, .offline, .blacklist, .failing { color:var(--bad); }
.warn, .retrying, .stranger, .unknown { color:var(--warn); }
.visitor { color:var(--accent); }
.dot { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:6px;
  background:var(--muted); } .dot.online { background:var(--ok); }
.dot.offline { background:var(--bad); }
.empty { color:var(--muted); font-style:italic; }
#conn.bad { font-weight:600; }
#add-box label { display:block; margin:0 0 8px; color:var(--muted); font-size:12px; }
#add-box input:not([type=checkbox]), #add-box select { display:block; width:100%; margin-top:2px;
  padding:5px 6px; font:inherit; color:var(--ink); background:var(--bg);
  border:1px solid var(--line); border-radius:4px; }
#add-box details { margin:0 0 8px; } #add-box summary { cursor:pointer; margin-bottom:6px; }
#add-box button, #panel-boxes button { font:inherit; padding:5px 12px; cursor:pointer; }
#setup-answer { margin-top:10px; font:12px/1.45 ui-monospace,monospace;
  overflow-wrap:anywhere; white-space:pre-wrap; }
#setup-answer .problem { color:var(--bad); }
#panel-boxes > div { display:flex; flex-wrap:wrap; gap:4px 10px; align-items:center;
  padding:6px 0; border-top:1px solid var(--line); }
h3 { font-size:13px; margin:14px 0 4px; }
/* Phones: one card per event (photos left, facts right), device rows wrap. */
@media (max-width: 760px) {
  header { padding:10px 12px; gap:6px 14px; }
  main { padding:10px 8px; gap:10px; }
  section { padding:10px; margin-bottom:10px; }
  .events thead { display:none; }
  .events, .events tbody { display:block; }
  .events tr { display:grid; grid-template-columns: auto minmax(0,1fr) auto;
    grid-template-areas: "thumbs who who" "thumbs type score" "thumbs device device"
      "thumbs door time";
    gap:3px 10px; align-items:start; padding:10px 0; border-top:1px solid var(--line); }
  .events tr:first-child { border-top:none; }
  .events td { display:block; border:none; padding:0; min-width:0; }
  .events td.thumbs { grid-area:thumbs; display:flex; flex-direction:column; gap:4px; }
  .events td.thumbs img { width:64px; height:64px; margin:0; }
  .events td.thumbs img.scene { width:64px; height:48px; }
  .events td.who { grid-area:who; } .events td.type { grid-area:type; }
  .events td.score { grid-area:score; text-align:right; }
  .events td.device { grid-area:device; } .events td.door { grid-area:door; }
  .events td.time { grid-area:time; text-align:right; }
  .devices tr { display:flex; flex-wrap:wrap; align-items:center; gap:2px 10px;
    padding:6px 0; border-top:1px solid var(--line); }
  .devices td { border:none; padding:0; min-width:0; }
  .plugins th, .plugins td { padding:6px 4px; }
}
</style>
</head>
<body>
<header>
  <h1>sophonfog-bridge</h1>
  <span class="stat">bridge <b id="bridge-id">…</b></span>
  <span class="stat">version <b id="version">…</b></span>
  <span class="stat">up <b id="uptime">…</b></span>
  <span class="stat">spool depth <b id="spool-depth">…</b></span>
  <span class="stat">MQTT <span id="mqtt" class="badge">…</span></span>
  <span class="stat" id="conn">loading…</span>
</header>
<main>
  <div>
    <section>
      <h2>Last events</h2>
      <div class="scroll"><table class="events">
        <thead><tr><th>photos</th><th>who</th><th>type</th><th>device</th><th>score</th>
          <th>time</th><th>door</th></tr></thead>
        <tbody id="events"></tbody>
      </table></div>
      <p id="no-events" class="empty">No events since the bridge started.</p>
    </section>
  </div>
  <div>
    <section>
      <h2>Plugins</h2>
      <div class="scroll"><table class="plugins">
        <thead><tr><th>plugin</th><th>state</th><th>backlog</th><th>done</th><th>failed</th>
          </tr></thead>
        <tbody id="plugins"></tbody>
      </table></div>
    </section>
    <section>
      <h2>Boxes and devices</h2>
      <div id="boxes"></div>
    </section>
    <section>
      <h2>Add a box</h2>
      <form id="add-box" autocomplete="off">
        <label>Box address
          <input name="address" placeholder="192.168.1.20 or 192.168.1.20:5555"></label>
        <label>Name <input name="name" placeholder="default: its address"></label>
        <label>Username (if the box needs a login) <input name="username"></label>
        <label>Password <input name="password" type="password" autocomplete="new-password"></label>
        <label>This bridge, as the box reaches it (host or IP, optional port)
          <input name="bridge" placeholder="found from the route to the box"></label>
        <details><summary>More</summary>
          <label>Firmware <select name="firmware"><option value="auto">probe it</option>
            <option value="v2">V2</option><option value="v5">V5R7</option>
            <option value="v6">V6</option></select></label>
          <label>Websocket port
            <input name="ws_port" inputmode="numeric" placeholder="5679"></label>
          <label>System port
            <input name="system_port" inputmode="numeric" placeholder="8888"></label>
          <label><input type="checkbox" name="replace">
            make this bridge the box's only receiver</label>
          <label><input type="checkbox" name="dry_run"> only show what would be set</label>
        </details>
        <button type="submit">Add the box</button>
      </form>
      <div id="setup-answer" aria-live="polite"></div>
      <h3>Boxes the bridge connects to</h3>
      <div id="panel-boxes"></div>
    </section>
    <section>
      <h2>Remote door commands</h2>
      <div id="remote"></div>
    </section>
  </div>
</main>
<script>
"use strict";
const CONFIG = __CONFIG__;
let lastEvents = "";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function cell(row, ...children) {
  const td = el("td");
  if (typeof children[0] === "string") td.className = children.shift();
  for (const c of children) if (c) td.appendChild(c);
  row.appendChild(td);
  return td;
}
// A device id such as AKOPKKKKK__192.168.1.101 may break after `_ . : - /` only.
function idText(cls, id) {
  const node = el("div", cls);
  for (const part of String(id).split(/(?<=[_.:/-])(?![_.:/-])/)) {
    node.appendChild(document.createTextNode(part));
    node.appendChild(el("wbr"));
  }
  return node;
}
function badge(text, cls) { return el("span", "badge " + (cls || text), text); }
function when(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
}
function imageUrl(id, which) {
  return "status/image/" + encodeURIComponent(id) + "/" + which;
}

function renderEvents(events) {
  const key = JSON.stringify(events);
  if (key === lastEvents) return;  // unchanged: keep the DOM and its loaded images
  lastEvents = key;
  const body = document.getElementById("events");
  body.replaceChildren();
  document.getElementById("no-events").hidden = events.length > 0;
  for (const e of events) {
    const row = el("tr");
    row.dataset.eventId = e.event_id;
    const thumbs = cell(row, "thumbs");
    for (const which of ["face", "scene"]) {
      if (!e.images.includes(which)) continue;
      const img = el("img", which);
      img.alt = which;
      img.loading = "lazy";
      img.src = imageUrl(e.event_id, which);
      thumbs.appendChild(img);
    }
    cell(row, "who", el("div", "name", e.identity_name || "(no name)"),
      el("div", "sub", e.identity_id + (e.group_name ? " · " + e.group_name : "")));
    cell(row, "type", badge(e.person_type),
      e.kind === "history" ? el("div", "sub", "history") : null);
    cell(row, "device", idText("id", e.device), el("div", "sub", e.device_type));
    cell(row, "score", el("span", "nowrap", (e.score * 100).toFixed(1) + " %"));
    cell(row, "time", el("span", "sub nowrap", when(e.timestamp)));
    const door = e.door;
    cell(row, "door", door ? badge(door.decision) : el("span", "sub", "—"),
      door ? el("div", "sub", door.door + ": " + door.reason) : null);
    body.appendChild(row);
  }
}

function renderPlugins(plugins) {
  const body = document.getElementById("plugins");
  body.replaceChildren();
  for (const name of Object.keys(plugins).sort()) {
    const p = plugins[name];
    const row = el("tr");
    const state = p.enabled === false ? "disabled" : (p.state || "ok");
    const name_cell = cell(row, el("div", "name", name));
    if (p.last_error || p.error) name_cell.appendChild(el("div", "sub", p.last_error || p.error));
    cell(row, badge(state, state === "disabled" ? "sub" : state));
    cell(row, el("span", null, p.backlog ?? "—"));
    cell(row, el("span", null, p.delivered ?? "—"));
    cell(row, el("span", null, p.failed ?? "—"));
    body.appendChild(row);
  }
}

function renderBoxes(boxes) {
  const root = document.getElementById("boxes");
  root.replaceChildren();
  if (!boxes.length) root.appendChild(el("p", "empty", "No box has been heard from yet."));
  for (const b of boxes) {
    const head = el("div", "name");
    const online = b.online === null ? "" : b.online ? "online" : "offline";
    head.appendChild(el("span", "dot " + online));
    head.appendChild(document.createTextNode(b.name ? b.name + " (" + b.box + ")" : b.box));
    root.appendChild(head);
    const facts = [];
    if (b.ip) facts.push(b.ip);
    if (b.cpu_usage != null) facts.push("CPU " + b.cpu_usage + " %");
    if (b.tpu_usage != null) facts.push("TPU " + b.tpu_usage + " %");
    if (b.temperature != null) facts.push(b.temperature + " °C");
    if (b.uptime_s != null) facts.push("up " + Math.round(b.uptime_s / 3600) + " h");
    if (b.seen_at) facts.push("heartbeat " + when(b.seen_at));
    if (b.link) facts.push("websocket " + (b.link.connected ? "connected" : "down") +
      " since " + when(b.link.since) + (b.link.reason ? " (" + b.link.reason + ")" : ""));
    if (facts.length) root.appendChild(el("div", "sub", facts.join(" · ")));
    const list = el("table", "devices");
    for (const d of b.devices) {
      const row = el("tr");
      row.dataset.device = d.device;
      const state = d.online === null ? "unknown" : d.online ? "online" : "offline";
      const who = cell(row, el("span", "dot " + state));
      who.appendChild(document.createTextNode(d.name || d.device));
      if (d.name) who.appendChild(idText("sub id", d.device));
      cell(row, el("span", "sub", [d.device_type, d.location].filter(Boolean).join(" · ")));
      cell(row, badge(state));
      list.appendChild(row);
    }
    root.appendChild(list);
  }
}

function renderRemote(decisions) {
  const root = document.getElementById("remote");
  root.replaceChildren();
  if (!decisions.length) root.appendChild(el("p", "empty", "None."));
  for (const d of decisions) {
    const line = el("div");
    line.appendChild(badge(d.decision));
    line.appendChild(document.createTextNode(" " + d.door + " · " + d.reason + " · "));
    line.appendChild(el("span", "sub", when(d.decided_at)));
    root.appendChild(line);
  }
}

function render(data) {
  document.getElementById("bridge-id").textContent = data.bridge.bridge_id;
  document.getElementById("version").textContent = data.bridge.version;
  document.getElementById("uptime").textContent = duration(data.bridge.uptime_s);
  document.getElementById("spool-depth").textContent = data.bridge.spool_depth;
  const mqtt = document.getElementById("mqtt");
  mqtt.textContent = data.mqtt.state;
  mqtt.className = "badge " + ({connected: "ok", disconnected: "bad"}[data.mqtt.state] || "sub");
  mqtt.title = data.mqtt.detail || "";
  renderEvents(data.events);
  renderPlugins(data.plugins);
  renderBoxes(data.boxes);
  renderRemote(data.remote_decisions);
}

// ---- setting up boxes (the bridge's setup/boxes routes) ----
let setup = null;
async function loadSetup() {
  const answer = await fetch("setup/boxes", {cache: "no-store"});
  if (!answer.ok) throw new Error("HTTP " + answer.status);
  setup = await answer.json();
  const bridge = document.querySelector('#add-box [name="bridge"]');
  if (!bridge.value) {
    // Through ingress the browser's host is Home Assistant's: the add-on's port is on it.
    bridge.value = setup.bridge_suggested ||
      (setup.ingress ? location.hostname + ":" + setup.bridge_port : "");
  }
  renderPanelBoxes();
}
function renderPanelBoxes() {
  const root = document.getElementById("panel-boxes");
  root.replaceChildren();
  const rows = [...setup.configured.map(b => [b, false]), ...setup.panel.map(b => [b, true])];
  if (!rows.length) root.appendChild(el("p", "empty", "None yet."));
  for (const [b, fromPanel] of rows) {
    const row = el("div");
    row.dataset.box = b.name;
    row.appendChild(el("span", "name", b.name));
    row.appendChild(el("span", "sub", b.host + ":" + b.api_port + " · " + b.firmware));
    row.appendChild(el("span", "sub", fromPanel ? "added from the panel" : "in the config file"));
    if (fromPanel) {
      const remove = el("button", null, "Remove");
      remove.type = "button";
      remove.addEventListener("click", () => act("setup/boxes/remove", {name: b.name}));
      row.appendChild(remove);
    }
    root.appendChild(row);
  }
}
function showAnswer(data, status) {
  const root = document.getElementById("setup-answer");
  root.replaceChildren();
  const lines = (data.problems || []).map(t => ({text: t, problem: true}))
    .concat(data.lines || []);
  if (!lines.length) lines.push({text: "HTTP " + status, problem: status >= 400});
  for (const line of lines) root.appendChild(el("div", line.problem ? "problem" : null, line.text));
}
async function act(path, body) {
  const button = document.querySelector("#add-box button");
  button.disabled = true;
  showAnswer({lines: [{text: "asking the box…"}]}, 0);
  try {
    if (!setup) await loadSetup();
    // The page's policy is no-referrer, under which the Fetch spec sends `Origin: null`
    // on a POST (Chromium sends the origin anyway); the bridge refuses null origins.
    const answer = await fetch(path, {method: "POST", cache: "no-store",
      referrerPolicy: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-Sophonfog-Csrf": setup.csrf}});
    let data = {};
    try { data = await answer.json(); } catch (err) { data = {}; }
    showAnswer(data, answer.status);
    await loadSetup();
  } catch (err) {
    showAnswer({problems: ["the bridge did not answer (" + err.message + ")"]}, 0);
  } finally {
    button.disabled = false;
  }
}
document.getElementById("add-box").addEventListener("submit", ev => {
  ev.preventDefault();
  const form = new FormData(ev.target), body = {};
  for (const [key, value] of form.entries()) body[key] = value;
  for (const key of ["replace", "dry_run"]) body[key] = form.has(key);
  act("setup/boxes", body);
});

async function refresh() {
  const conn = document.getElementById("conn");
  try {
    // A request that is never answered (a half-open link, a stuck proxy) would otherwise
    // hold the chain of refreshes for good.
    const answer = await fetch("status.json",
      {cache: "no-store", signal: AbortSignal.timeout(CONFIG.timeout_ms)});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    render(await answer.json());
    conn.textContent = "updated " + new Date().toLocaleTimeString();
    conn.className = "stat";
  } catch (err) {
    conn.textContent = "bridge unreachable (" + err.message + ")";
    conn.className = "stat bad";
  } finally {
    setTimeout(refresh, CONFIG.refresh_ms);
  }
}
refresh();
loadSetup().catch(err =>
  showAnswer({problems: ["box setup unavailable (" + err.message + ")"]}, 0));
</script>
</body>
</html>
"""


def render_page(refresh_s: float) -> str:
    refresh_ms = int(refresh_s * 1000)
    config = json.dumps({"refresh_ms": refresh_ms, "timeout_ms": max(4 * refresh_ms, 2000)})
    return PAGE.replace("__CONFIG__", config)
