// dgate's watch and replay pages: the game's own bytes drawn by a real
// terminal emulator (xterm.js, its DOM renderer: the text stays in the page).
//
// The socket (dgate-server/src/web/wire.rs) sends terminal bytes as binary
// messages and JSON controls as text: `snapshot` (frame_id, cols, rows,
// skipped) announces that the next binary message is a whole screen (reset
// the terminal, make it cols x rows, write it); every other binary message
// is the next frame (ids count on from the snapshot's); `resize`, `status`,
// `end`, and on a replay page `replay` and `replay_state`. The terminal is always the game's
// size (the page never asks the game to resize); the font is scaled so it
// fits the window's width. The page is read-only: nothing typed is sent.
"use strict";

const mode = document.body.dataset.mode || "watch";

const screenEl = document.getElementById("screen");
const statusEl = document.getElementById("status");
const stateEl = document.getElementById("state");
const sessionId = decodeURIComponent(location.pathname.split("/").pop());
const recordingId = decodeURIComponent(location.pathname.slice("/replay/".length));

// xterm's own 16 colours (X11 xterm's defaults): colour 3 is a dark yellow
// and bold draws it as colour 11, bright yellow, as NetHack's gold expects.
const THEME = {
  foreground: "#e5e5e5", background: "#000000", cursor: "#e5e5e5", cursorAccent: "#000000",
  black: "#000000", red: "#cd0000", green: "#00cd00", yellow: "#cdcd00",
  blue: "#0000ee", magenta: "#cd00cd", cyan: "#00cdcd", white: "#e5e5e5",
  brightBlack: "#7f7f7f", brightRed: "#ff0000", brightGreen: "#00ff00", brightYellow: "#ffff00",
  brightBlue: "#5c5cff", brightMagenta: "#ff00ff", brightCyan: "#00ffff", brightWhite: "#ffffff",
};

const term = new Terminal({
  cols: 80,
  rows: 24,
  scrollback: 0,
  disableStdin: true,
  cursorBlink: false,
  drawBoldTextInBrightColors: true,
  fontFamily: '"DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
  fontSize: 16,
  theme: THEME,
});
const fitter = new FitAddon.FitAddon();
term.loadAddon(fitter);
term.open(screenEl);
// The title the game gives its terminal (OSC 0/2), for the reader.
term.onTitleChange((title) => {
  screenEl.dataset.title = title;
  screenEl.title = title;
});

// Scales the font so that the game's columns fit the window's width.
function fitFont() {
  const proposed = fitter.proposeDimensions();
  if (!proposed || !proposed.cols) return;
  const wanted = term.options.fontSize * proposed.cols / term.cols;
  const size = Math.max(6, Math.min(18, Math.floor(wanted * 2) / 2));
  if (size !== term.options.fontSize) term.options.fontSize = size;
}
window.addEventListener("resize", fitFont);

function setSize(cols, rows) {
  if (cols !== term.cols || rows !== term.rows) {
    term.resize(cols, rows);
    fitFont();
  }
}

// The last frame written: a page that reconnects resumes after it. The
// page's `data-frame` says which frame the rows show (set once xterm has
// parsed the bytes and drawn them).
let lastFrame = 0;
let shownFrame = 0;
let marking = false;
let snapshots = 0;
let skipped = 0;

function markShown(id) {
  shownFrame = id;
  if (marking) return;
  marking = true;
  // xterm draws on the next animation frame: mark after it.
  requestAnimationFrame(() => {
    marking = false;
    screenEl.dataset.frame = shownFrame;
    screenEl.dataset.snapshots = snapshots;
    screenEl.dataset.skipped = skipped;
  });
}

// A snapshot announced: its body is the next binary message.
let announced = null;

function binary(buffer) {
  const bytes = new Uint8Array(buffer);
  if (announced) {
    const snapshot = announced;
    announced = null;
    lastFrame = snapshot.frame_id;
    snapshots += 1;
    skipped += snapshot.skipped;
    term.reset();
    setSize(snapshot.cols, snapshot.rows);
    term.write(bytes, () => markShown(snapshot.frame_id));
    return;
  }
  const id = ++lastFrame;
  term.write(bytes, () => markShown(id));
}

let game = { player: "", game: "", watchers: 0 };
function showStatus() {
  if (mode === "replay" || !game.player) return;
  statusEl.textContent = game.player + " · " + game.game + " · " + term.cols + "x" + term.rows +
    " · " + game.watchers + " watching";
}

function control(message) {
  switch (message.type) {
    case "snapshot":
      announced = message;
      break;
    case "resize":
      setSize(message.cols, message.rows);
      showStatus();
      break;
    case "status":
      game = message;
      document.title = "dgate: watching " + message.player + " · " + message.game;
      showStatus();
      break;
    case "end":
      ended = true;
      statusEl.textContent = message.message;
      setState("ended", false);
      if (message.replay) linkReplay(message.replay);
      break;
    case "replay": {
      replay.duration = message.duration;
      const name = message.game_id && message.game_id !== message.game
        ? message.game_id + " (" + message.game + ")" : message.game;
      document.title = "dgate: replay of " + message.player + " · " + message.game;
      statusEl.textContent = "Replay: " + message.player + " · " + name + " · " +
        message.start.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC";
      document.getElementById("progress").max = message.duration.toFixed(1);
      break;
    }
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

// The game is over: its replay is linked once its recording is on disk
// (the recorder finishes it just after the end).
function linkReplay(path) {
  const link = document.getElementById("replay-link");
  const file = "/recordings/" + path.slice("/replay/".length);
  let tries = 0;
  const check = async () => {
    try {
      const response = await fetch(file, { method: "HEAD", cache: "no-store" });
      if (response.ok) {
        link.href = path;
        link.hidden = false;
        return;
      }
    } catch (e) {
      // The server is away: try again.
    }
    if (++tries < 60) setTimeout(check, 500);
  };
  check();
}

function setState(text, live) {
  stateEl.textContent = text;
  stateEl.className = live ? "state-live" : "state-down";
}

function receive(event) {
  if (typeof event.data === "string") control(JSON.parse(event.data));
  else binary(event.data);
}

let ended = false;
let backoff = 500;
function connect() {
  announced = null;
  if (mode === "replay") return connectReplay();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  // After a drop, say where the screen is: the server sends the frames since
  // (or the whole screen when they are too old).
  const resume = lastFrame > 0 ? "&from=" + lastFrame : "";
  const socket = new WebSocket(scheme + location.host + "/ws/spectate?session=" +
    encodeURIComponent(sessionId) + resume);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { backoff = 500; setState("live", true); };
  socket.onmessage = receive;
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
  announced = null;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  // A link may start at a moment (?at=seconds); after a drop, go on from
  // where the replay was.
  const linked = Number(new URLSearchParams(location.search).get("at")) || 0;
  const from = replay.position > 0 && !replay.ended ? now() : linked;
  const at = from > 0 ? "&at=" + from.toFixed(2) : "";
  const socket = new WebSocket(scheme + location.host + "/ws/replay?id=" +
    encodeURIComponent(recordingId) + at);
  socket.binaryType = "arraybuffer";
  replay.socket = socket;
  socket.onopen = () => { backoff = 500; };
  socket.onmessage = receive;
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
  // Captured before the terminal's own (hidden) input sees them.
  window.addEventListener("keydown", (e) => {
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
    if (keys[e.key]) { e.preventDefault(); e.stopPropagation(); keys[e.key](); }
  }, true);
  setInterval(showPosition, 250);
}

fitFont();
connect();
