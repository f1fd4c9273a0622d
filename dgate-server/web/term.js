// dgate's watch, play and replay pages: the game's own bytes drawn by a real
// terminal emulator (xterm.js, its DOM renderer: the text stays in the page),
// with the game's chat beside it.
//
// The socket (dgate-server/src/web/wire.rs) sends terminal bytes as binary
// messages and JSON controls as text: `snapshot` (frame_id, cols, rows,
// skipped) announces that the next binary message is a whole screen (reset
// the terminal, make it cols x rows, write it); every other binary message
// is the next frame (ids count on from the snapshot's); `resize`, `status`,
// `end`, `chat`, `audience`, `answer`, `notice`, and on a replay page
// `replay` and `replay_state`. The terminal is always the game's size; the
// font is scaled so that it fits the window. A watch page never sends keys
// (only chat lines and messages for the player); the play page sends the
// player's keys as binary messages and asks the game to follow the window's
// size.
"use strict";

const mode = document.body.dataset.mode || "watch";

const screenEl = document.getElementById("screen");
const statusEl = document.getElementById("status");
const stateEl = document.getElementById("state");
const lastSegment = decodeURIComponent(location.pathname.split("/").pop());
// Watching: the session's id; playing: the game's id.
const sessionId = lastSegment;
const gameId = lastSegment;
// The visitor's account name ("" when not logged in).
const user = document.body.dataset.user || "";
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

const playing = mode === "play";
const term = new Terminal({
  cols: 80,
  rows: 24,
  scrollback: 0,
  disableStdin: !playing,
  cursorBlink: playing,
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

// The font size the page prefers; smaller only when the game would not
// fit the window otherwise.
const BASE_FONT = 15;

// A cell's size in CSS pixels at the base font, measured from what xterm
// drew (its rows are DOM elements).
function cellAtBase() {
  const drawn = term.element && term.element.querySelector(".xterm-screen");
  const box = drawn ? drawn.getBoundingClientRect() : null;
  const font = term.options.fontSize;
  if (!box || !box.width || !box.height) return { w: BASE_FONT * 0.6, h: BASE_FONT * 1.2 };
  return { w: box.width / term.cols * BASE_FONT / font, h: box.height / term.rows * BASE_FONT / font };
}

// The room the terminal has: the window's, less the bars and the chat.
function room() {
  const wrap = screenEl.parentElement;
  const style = getComputedStyle(wrap);
  const w = wrap.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 8;
  const h = wrap.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom) - 8;
  return { w: Math.max(w, 100), h: Math.max(h, 60) };
}

// The smallest font a phone shows the game in by default; a smaller one
// would fit the whole screen but is not readable (100 columns on a 390-px
// phone are 3.6 px each).
const READABLE_FONT = 12;
// On a phone held upright the page shows the part of the screen around the
// cursor at a readable size (`cropped`), or the whole screen scaled down
// when the reader asks for it (a tap, or the button).
let wholeScreen = false;
let cropped = false;
const viewToggle = document.getElementById("view-toggle");

function uprightPhone() {
  return matchMedia("(max-width: 40rem) and (orientation: portrait)").matches;
}

// Scales the font so that the game's whole screen fits the room, from its
// width and its height (never above the base size, never below 5 px); on
// an upright phone, never below a readable size unless asked.
function fitFont() {
  const cell = cellAtBase();
  const space = room();
  const scale = Math.min(1, space.w / (term.cols * cell.w), space.h / (term.rows * cell.h));
  let size = Math.max(5, Math.floor(BASE_FONT * scale * 2) / 2);
  cropped = uprightPhone() && !wholeScreen && size < READABLE_FONT;
  if (cropped) size = READABLE_FONT;
  document.body.classList.toggle("cropped", cropped);
  if (viewToggle) {
    viewToggle.hidden = !uprightPhone() || (!cropped && !wholeScreen);
    viewToggle.textContent = cropped ? "Whole screen" : "Follow the cursor";
  }
  if (size !== term.options.fontSize) term.options.fontSize = size;
  followCursor();
}

function toggleView() {
  wholeScreen = !wholeScreen;
  fitFont();
}

// Cropped: the cursor (where the game's action is) stays in view.
function followCursor() {
  const wrap = screenEl.parentElement;
  if (!cropped) {
    wrap.scrollLeft = 0;
    return;
  }
  const drawn = term.element.querySelector(".xterm-screen").getBoundingClientRect();
  const cw = drawn.width / term.cols;
  const ch = drawn.height / term.rows;
  const x = term.buffer.active.cursorX * cw;
  const y = term.buffer.active.cursorY * ch;
  const w = wrap.clientWidth;
  const h = wrap.clientHeight;
  if (x < wrap.scrollLeft + w / 4 || x > wrap.scrollLeft + 3 * w / 4) {
    wrap.scrollLeft = Math.max(0, x - w / 2);
  }
  if (y < wrap.scrollTop + h / 4 || y > wrap.scrollTop + 3 * h / 4) {
    wrap.scrollTop = Math.max(0, y - h / 2);
  }
}

// Playing: the size the game should be for this window (at least 80x24,
// what curses games expect, at most the server's 300x100).
function wantedSize() {
  const cell = cellAtBase();
  const space = room();
  const cols = Math.max(80, Math.min(300, Math.floor(space.w / cell.w)));
  const rows = Math.max(24, Math.min(100, Math.floor(space.h / cell.h)));
  return { cols, rows };
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (playing) askForSize();
    fitFont();
  }, 200);
});

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
    followCursor();
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
  const who = playing ? "You (" + game.player + ")" : game.player;
  statusEl.textContent = who + " · " + game.game + " · " + term.cols + "x" + term.rows +
    " · " + game.watchers + " watching";
}

function control(message) {
  switch (message.type) {
    case "snapshot":
      announced = message;
      // After a replay's screen (its start, a seek) the chat said up to
      // there may follow, as history: it replaces the log.
      historyBatch = false;
      break;
    case "resize":
      setSize(message.cols, message.rows);
      showStatus();
      break;
    case "status":
      game = message;
      document.title = "dgate: " + (playing ? "playing " : "watching ") + message.player + " · " + message.game;
      showStatus();
      break;
    case "end":
      ended = true;
      statusEl.textContent = message.message;
      setState("ended", false);
      if (message.replay) linkReplay(message.replay);
      if (playing && /log in/i.test(message.message)) document.getElementById("relogin").hidden = false;
      else if (playing) document.getElementById("again").hidden = false;
      break;
    case "chat":
      chatLine(message);
      break;
    case "audience":
      showAudience(message);
      break;
    case "answer":
      showAnswer(message.text);
      break;
    case "notice":
      noticeLine(message);
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
let live = null;
let failures = 0;
// The pending reconnect, cleared when the page is left or shown again.
let retryTimer = null;
function connect() {
  announced = null;
  if (mode === "replay") return connectReplay();
  if (playing) return connectPlay();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  // After a drop, say where the screen is: the server sends the frames since
  // (or the whole screen when they are too old).
  const resume = lastFrame > 0 ? "&from=" + lastFrame : "";
  const socket = new WebSocket(scheme + location.host + "/ws/spectate?session=" +
    encodeURIComponent(sessionId) + resume);
  socket.binaryType = "arraybuffer";
  live = socket;
  socket.onopen = () => { backoff = 500; setState("live", true); };
  socket.onmessage = (event) => { if (socket === live) receive(event); };
  socket.onclose = () => {
    if (ended || leaving || socket !== live) return;
    // Reconnect with backoff, resuming from the last frame shown.
    setState("reconnecting (last frame " + lastFrame + ")", false);
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

// Playing: the game starts (or resumes) at this window's size; each time
// the socket opens the server sends the whole screen first.
let askedSize = null;
function connectPlay() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  askedSize = wantedSize();
  const socket = new WebSocket(scheme + location.host + "/ws/play?game=" +
    encodeURIComponent(gameId) + "&cols=" + askedSize.cols + "&rows=" + askedSize.rows);
  socket.binaryType = "arraybuffer";
  live = socket;
  let opened = false;
  socket.onopen = () => {
    opened = true;
    failures = 0;
    backoff = 500;
    setState("playing", true);
    term.focus();
  };
  socket.onmessage = (event) => { if (socket === live) receive(event); };
  socket.onclose = () => {
    if (ended || leaving || socket !== live) return;
    if (!opened && ++failures >= 3) {
      // Refused more than once: most likely the login ended.
      statusEl.textContent = "Cannot start the game here: are you still logged in?";
      document.getElementById("relogin").hidden = false;
    }
    setState("reconnecting", false);
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

function sendText(message) {
  if (live && live.readyState === WebSocket.OPEN) {
    live.send(JSON.stringify(message));
    return true;
  }
  return false;
}

// The game follows the window: a new size is asked for when it changes.
function askForSize() {
  const size = wantedSize();
  if (askedSize && size.cols === askedSize.cols && size.rows === askedSize.rows) return;
  if (sendText({ type: "resize", cols: size.cols, rows: size.rows })) askedSize = size;
}

// The player's keys, as the bytes a terminal sends. Ctrl on the key row
// makes the next letter a control character.
const encoder = new TextEncoder();
let ctrlArmed = false;
function sendKeys(data) {
  if (ctrlArmed && data.length === 1) {
    const code = data.toUpperCase().charCodeAt(0);
    if (code >= 64 && code < 96) data = String.fromCharCode(code - 64);
    setCtrl(false);
  }
  if (!live || live.readyState !== WebSocket.OPEN) return;
  // A long paste goes in pieces under the socket's 64 KiB message limit.
  const bytes = encoder.encode(data);
  for (let at = 0; at < bytes.length; at += 32768) live.send(bytes.subarray(at, at + 32768));
}

function setCtrl(on) {
  ctrlArmed = on;
  const button = document.querySelector('#keys [data-key="ctrl"]');
  if (button) button.setAttribute("aria-pressed", String(on));
}

if (playing) {
  term.onData(sendKeys);
  screenEl.addEventListener("click", () => term.focus());
  const cursor = (final) => () => (term.modes.applicationCursorKeysMode ? "\x1bO" : "\x1b[") + final;
  const named = {
    esc: () => "\x1b", tab: () => "\t", enter: () => "\r",
    up: cursor("A"), down: cursor("B"), right: cursor("C"), left: cursor("D"),
  };
  const keys = document.getElementById("keys");
  const toggle = document.getElementById("keys-toggle");
  const showKeys = (on) => {
    keys.hidden = !on;
    toggle.setAttribute("aria-expanded", String(on));
    askForSize();
    fitFont();
  };
  toggle.onclick = () => showKeys(keys.hidden);
  // Buttons never take the focus from the game (the phone's keyboard stays).
  keys.addEventListener("mousedown", (e) => e.preventDefault());
  keys.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.dataset.key === "ctrl") return setCtrl(!ctrlArmed);
    if (button.dataset.key) sendKeys(named[button.dataset.key]());
    else if (button.dataset.send) sendKeys(button.dataset.send);
  });
  if (matchMedia("(pointer: coarse)").matches) showKeys(true);
}

// The chat beside the game: lines escaped as text (never HTML), who
// watches, answers for this page alone.
const chatLog = document.getElementById("chat-log");
let lastChatId = 0;

function clearChat() {
  if (chatLog) chatLog.replaceChildren();
  lastChatId = 0;
}

function appendChat(item) {
  const atBottom = chatLog.scrollHeight - chatLog.scrollTop - chatLog.clientHeight < 24;
  chatLog.append(item);
  while (chatLog.children.length > 200) chatLog.firstElementChild.remove();
  if (atBottom) chatLog.scrollTop = chatLog.scrollHeight;
}

let historyBatch = false;
function chatLine(line) {
  if (!chatLog) return;
  if (mode === "replay") {
    if (line.history && !historyBatch) clearChat();
    historyBatch = line.history;
  }
  // After a reconnect the history comes again: each line once (a replay's
  // log is replaced after each seek instead).
  if (mode !== "replay") {
    if (line.id <= lastChatId) return;
    lastChatId = line.id;
  }
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = line.sent_at;
  // The reader's own clock (the line carries UTC).
  const at = new Date(line.sent_at);
  time.textContent = isNaN(at) ? line.sent_at.slice(11, 16)
    : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const who = document.createElement("b");
  who.textContent = line.sender;
  if (line.from_player) who.className = "from-player";
  if (line.from_admin) {
    who.className = "from-admin";
    who.title = "an administrator";
  }
  item.append(time, " ", who, ": ", line.text);
  appendChat(item);
}

function noticeLine(notice) {
  if (!chatLog) return;
  const item = document.createElement("li");
  item.className = "notice";
  item.textContent = notice.announcement
    ? "Announcement: " + notice.text
    : "Message from " + notice.sender + ": " + notice.text;
  appendChat(item);
}

function showAudience(audience) {
  game.watchers = audience.names.length + audience.anonymous;
  showStatus();
  const el = document.getElementById("spectators");
  if (!el) return;
  const parts = audience.names.slice();
  if (audience.anonymous) parts.push(audience.anonymous + " anonymous");
  el.textContent = parts.length ? "Watching: " + parts.join(", ") : "Nobody is watching.";
  el.dataset.names = audience.names.join(",");
  el.dataset.anonymous = audience.anonymous;
}

let answerTimer = null;
function showAnswer(text) {
  const el = document.getElementById("answer");
  if (!el) return;
  el.textContent = text;
  clearTimeout(answerTimer);
  answerTimer = setTimeout(() => { el.textContent = ""; }, 10000);
}

function setUpChat() {
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  if (!form) return;
  if (mode === "replay") {
    form.hidden = true;
    return;
  }
  if (!user) {
    // Anonymous spectators read.
    form.hidden = true;
    const login = document.getElementById("chat-login");
    login.hidden = false;
    login.querySelector("a").href = "/login?next=" + encodeURIComponent(location.pathname);
    return;
  }
  form.onsubmit = (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text && sendText({ type: "chat", text })) input.value = "";
    if (playing) term.focus();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      input.blur();
      if (playing) term.focus();
    }
  });
  if (mode !== "watch") return;
  // `m`: a message for the player (as `m` in dgate watch and over SSH).
  const messageForm = document.getElementById("message-form");
  const messageInput = document.getElementById("message-input");
  const button = document.getElementById("message-button");
  const openMessage = () => {
    messageForm.hidden = false;
    messageInput.focus();
  };
  button.hidden = false;
  button.onclick = openMessage;
  messageForm.onsubmit = (e) => {
    e.preventDefault();
    const text = messageInput.value.trim();
    if (text && sendText({ type: "message", text })) messageInput.value = "";
    messageForm.hidden = true;
  };
  messageInput.addEventListener("keydown", (e) => {
    if (e.key === "Escape") messageForm.hidden = true;
  });
  window.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement;
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "m") { e.preventDefault(); openMessage(); }
    if (e.key === "c") { e.preventDefault(); input.focus(); }
  });
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
  // The chat up to the new position comes with its screen.
  clearChat();
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

// Leaving the page ends its socket at once (a player detaches, a spectator
// leaves the count), even when the browser keeps the page to come back to;
// coming back opens a new one.
let leaving = false;
window.addEventListener("pagehide", () => {
  leaving = true;
  clearTimeout(retryTimer);
  if (live) live.close();
  live = null;
});
window.addEventListener("pageshow", (e) => {
  if (!e.persisted || mode === "replay") return;
  leaving = false;
  clearTimeout(retryTimer);
  if (!ended) connect();
});

if (viewToggle) viewToggle.onclick = toggleView;
// Watching on an upright phone, a tap on the game switches the view too.
if (!playing) {
  screenEl.addEventListener("click", () => {
    if (uprightPhone() && !getSelection().toString()) toggleView();
  });
}

setUpChat();
fitFont();
connect();
