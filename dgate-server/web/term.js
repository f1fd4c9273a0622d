// dgate's watch and replay pages: rows of styled text from the server's
// screen model. A snapshot replaces every row; a delta replaces the rows a
// frame changed. On a replay page the same messages come from a recording,
// with `replay` and `replay_state` for the controls.
"use strict";

const mode = document.body.dataset.mode || "watch";

const screenEl = document.getElementById("screen");
const statusEl = document.getElementById("status");
const stateEl = document.getElementById("state");
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
const recordingId = decodeURIComponent(location.pathname.slice("/replay/".length));

// The 16 ANSI colours, then the 6x6x6 cube and the grey ramp.
const PALETTE = [
  "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
];
for (let i = 16; i < 232; i++) {
  const n = i - 16;
  const level = (v) => (v === 0 ? 0 : 55 + v * 40);
  const hex = (v) => level(v).toString(16).padStart(2, "0");
  PALETTE.push("#" + hex(Math.floor(n / 36)) + hex(Math.floor(n / 6) % 6) + hex(n % 6));
}
for (let i = 0; i < 24; i++) {
  const v = (8 + i * 10).toString(16).padStart(2, "0");
  PALETTE.push("#" + v + v + v);
}

function color(n) {
  if (n === undefined || n === null) return null;
  if (n >= 0x1000000) return "#" + (n & 0xffffff).toString(16).padStart(6, "0");
  return PALETTE[n] || null;
}

function rowElement(runs) {
  const row = document.createElement("div");
  row.className = "row";
  for (const run of runs) {
    const span = document.createElement("span");
    span.textContent = run.t;
    const a = run.a || 0;
    let fg = color(run.fg);
    let bg = color(run.bg);
    if (a & 16) {
      [fg, bg] = [bg || "#000000", fg || "#c0c0c0"];
    }
    if (fg) span.style.color = fg;
    if (bg) span.style.backgroundColor = bg;
    if (a & 1) span.style.fontWeight = "bold";
    if (a & 2) span.style.opacity = "0.7";
    if (a & 4) span.style.fontStyle = "italic";
    if (a & 8) span.style.textDecoration = "underline";
    row.appendChild(span);
  }
  return row;
}

let rows = [];
let size = { cols: 80, rows: 24 };
const cursorEl = document.createElement("div");
cursorEl.id = "cursor";
let lastFrame = 0;

function placeCursor(cursor) {
  cursorEl.hidden = !cursor.visible;
  cursorEl.style.left = "calc(0.2rem + " + cursor.col + "ch)";
  cursorEl.style.top = "calc(0.2rem + " + cursor.row * 1.2 + "em)";
}

// Scales the terminal to the window's width (a phone shows a whole 80 columns).
function fit() {
  const available = window.innerWidth - 24;
  const px = Math.max(6, Math.min(18, available / (size.cols * 0.62)));
  screenEl.style.setProperty("--cell-size", px.toFixed(1) + "px");
}
window.addEventListener("resize", fit);

function apply(message) {
  switch (message.type) {
    case "snapshot":
      size = { cols: message.cols, rows: message.rows };
      rows = message.lines.map(rowElement);
      screenEl.replaceChildren(...rows, cursorEl);
      screenEl.dataset.frame = message.frame_id;
      lastFrame = message.frame_id;
      placeCursor(message.cursor);
      fit();
      break;
    case "delta":
      for (const [index, runs] of message.lines) {
        const row = rowElement(runs);
        if (rows[index]) {
          screenEl.replaceChild(row, rows[index]);
        }
        rows[index] = row;
      }
      screenEl.dataset.frame = message.frame_id;
      lastFrame = message.frame_id;
      placeCursor(message.cursor);
      break;
    case "status":
      document.title = "dgate: " + message.player + " · " + message.game;
      statusEl.textContent = message.player + " · " + message.game + " · " +
        size.cols + "x" + size.rows + " · " + message.watchers +
        (message.watchers === 1 ? " watching" : " watching");
      break;
    case "end":
      ended = true;
      statusEl.textContent = message.message;
      setState("ended", false);
      break;
    case "replay":
      replay.duration = message.duration;
      document.title = "dgate: replay of " + message.player + " · " + message.game;
      statusEl.textContent = "Replay: " + message.player + " · " + message.game + " · " +
        message.start.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC";
      document.getElementById("progress").max = message.duration.toFixed(1);
      break;
    case "replay_state":
      replay.position = message.position;
      replay.speed = message.speed;
      replay.paused = message.paused;
      replay.ended = message.ended;
      replay.at = performance.now();
      setState(message.ended ? "ended" : message.paused ? "paused" : "playing", !message.ended);
      document.getElementById("play").textContent = message.paused || message.ended ? "Play" : "Pause";
      document.getElementById("speed").textContent = message.speed + "×";
      showPosition();
      break;
  }
}

function setState(text, live) {
  stateEl.textContent = text;
  stateEl.className = live ? "state-live" : "state-down";
}

let ended = false;
let backoff = 500;
function connect() {
  if (mode === "replay") return connectReplay();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  // After a drop, say where the screen is: the server sends the frames since
  // (or the whole screen when they are too old).
  const resume = lastFrame > 0 ? "&from=" + lastFrame : "";
  const socket = new WebSocket(scheme + location.host + "/ws/spectate?session=" +
    encodeURIComponent(sessionId) + resume);
  socket.onopen = () => { backoff = 500; setState("live", true); };
  socket.onmessage = (event) => apply(JSON.parse(event.data));
  socket.onclose = () => {
    if (ended) return;
    // Reconnect with backoff, resuming from the last frame shown.
    setState("reconnecting (last frame " + lastFrame + ")", false);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

// The replay page: where the replay is (told by the server, and run on
// locally between its messages), and the controls that steer it.
const replay = { duration: 0, position: 0, speed: 1, paused: false, ended: false, at: 0, socket: null };

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor(s / 60) % 60).padStart(h ? 2 : 1, "0");
  return (h ? h + ":" : "") + mm + ":" + String(s % 60).padStart(2, "0");
}

function now() {
  if (replay.paused || replay.ended) return replay.position;
  const run = (performance.now() - replay.at) / 1000 * replay.speed;
  return Math.min(replay.duration, replay.position + run);
}

function showPosition() {
  const at = now();
  const progress = document.getElementById("progress");
  if (document.activeElement !== progress) progress.value = at.toFixed(1);
  document.getElementById("time").textContent = clock(at) + " / " + clock(replay.duration);
}

function steer(message) {
  if (replay.socket && replay.socket.readyState === WebSocket.OPEN) {
    replay.socket.send(JSON.stringify(message));
  }
}

function seek(seconds) {
  steer({ seek: Math.max(0, Math.min(replay.duration, seconds)) });
}

function connectReplay() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  // A link may start at a moment (?at=seconds); after a drop, go on from
  // where the replay was.
  const linked = Number(new URLSearchParams(location.search).get("at")) || 0;
  const from = replay.position > 0 && !replay.ended ? now() : linked;
  const at = from > 0 ? "&at=" + from.toFixed(2) : "";
  const socket = new WebSocket(scheme + location.host + "/ws/replay?id=" +
    encodeURIComponent(recordingId) + at);
  replay.socket = socket;
  socket.onopen = () => { backoff = 500; };
  socket.onmessage = (event) => apply(JSON.parse(event.data));
  socket.onclose = () => {
    if (replay.ended) return;
    setState("reconnecting", false);
    setTimeout(connectReplay, backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

if (mode === "replay") {
  document.getElementById("download").href = "/recordings/" + recordingId.split("/").map(encodeURIComponent).join("/");
  document.getElementById("play").onclick = () => {
    if (replay.ended) seek(0); else steer({ paused: !replay.paused });
  };
  document.getElementById("slower").onclick = () => steer({ speed: Math.max(0.25, replay.speed / 2) });
  document.getElementById("faster").onclick = () => steer({ speed: Math.min(16, replay.speed * 2) });
  document.getElementById("progress").onchange = (e) => seek(Number(e.target.value));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      " ": () => document.getElementById("play").click(),
      "+": () => document.getElementById("faster").click(),
      "=": () => document.getElementById("faster").click(),
      "-": () => document.getElementById("slower").click(),
      "ArrowLeft": () => seek(now() - 10),
      "ArrowRight": () => seek(now() + 10),
      "Home": () => seek(0),
      "End": () => seek(replay.duration),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  setInterval(showPosition, 250);
}

connect();
