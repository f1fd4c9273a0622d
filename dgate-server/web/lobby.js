"use strict";
// From the server: the games' names as the menus show them (NH36), by id,
// and who the visitor is (null when not logged in) with the games they can play.
const DATA = JSON.parse(document.getElementById("game-names").textContent || "{}");
const GAME_NAMES = DATA.names || {};
const VISITOR = DATA.visitor || null;
function gameName(id) {
  return GAME_NAMES[id] || id;
}
function idle(seconds) {
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + Math.floor(seconds % 3600 / 60) + "m";
  return Math.floor(seconds / 86400) + "d " + Math.floor(seconds % 86400 / 3600) + "h";
}
function cell(text, className, label) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (label) td.dataset.label = label;
  return td;
}
// Logged in: your name, a way out, and the games you can play (or resume);
// else the way in.
function showVisitor() {
  const you = document.getElementById("you");
  you.replaceChildren();
  if (!VISITOR) {
    const login = document.createElement("a");
    login.href = "/login";
    login.textContent = "Log in to play and chat";
    you.append(login);
    return;
  }
  const name = document.createElement("a");
  name.href = "/player/" + encodeURIComponent(VISITOR.username);
  name.textContent = "Logged in as " + VISITOR.username;
  name.title = "Your games and files";
  you.append(name);
  for (const g of VISITOR.games) {
    if (g.unavailable) continue;
    const play = document.createElement("a");
    play.href = "/play/" + encodeURIComponent(g.id);
    play.className = "play";
    play.textContent = (g.running ? "Resume " : "Play ") + g.short_name;
    play.title = g.name;
    you.append(play);
    if (g.rc) {
      const options = document.createElement("a");
      options.href = "/options/" + encodeURIComponent(g.id);
      options.textContent = "(options)";
      options.title = "Edit your " + g.name + " options";
      you.append(options);
    }
  }
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/logout";
  const out = document.createElement("button");
  out.type = "submit";
  out.textContent = "Log out";
  form.append(out);
  you.append(form);
}
async function refresh() {
  try {
    const response = await fetch("/sessions", { cache: "no-store" });
    const list = await response.json();
    const body = document.getElementById("games");
    body.replaceChildren();
    for (const s of list.sessions) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/watch/" + encodeURIComponent(s.id);
      link.textContent = s.username;
      name.appendChild(link);
      tr.appendChild(name);
      // In a cluster: the node the game runs (and is played) on.
      const on = s.node ? " on " + s.node : "";
      tr.appendChild(cell(gameName(s.game_id) + on, "", "Game"));
      tr.appendChild(cell(s.terminal.cols + "x" + s.terminal.rows, "", "Size"));
      tr.appendChild(cell(s.start_time.replace("T", " ").replace(/\.\d+Z$|Z$/, ""), "", "Start"));
      tr.appendChild(cell(s.detached ? "detached" : idle(s.idle_seconds), "", "Idle"));
      tr.appendChild(cell(String(s.spectator_count), "num", "Watchers"));
      if (s.extra_info) tr.appendChild(cell(s.extra_info, "extra", "Info"));
      else tr.appendChild(cell("", "extra"));
      body.appendChild(tr);
    }
    const n = list.sessions.length;
    document.getElementById("count").textContent = n === 1 ? "1 game" : n + " games";
  } catch (e) {
    document.getElementById("count").textContent = "The server is not answering; retrying…";
  }
}
function when(rfc3339) {
  return rfc3339.replace("T", " ").replace(/\.\d+Z$|Z$/, "");
}
async function refreshRecent() {
  try {
    const response = await fetch("/recordings", { cache: "no-store" });
    if (!response.ok) return;
    const list = await response.json();
    const body = document.getElementById("recent");
    body.replaceChildren();
    for (const r of list.recordings) {
      const path = r.id.split("/").map(encodeURIComponent).join("/");
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/replay/" + path;
      link.textContent = r.username;
      name.appendChild(link);
      tr.appendChild(name);
      tr.appendChild(cell(gameName(r.game_id), "", "Game"));
      tr.appendChild(cell(r.cols + "x" + r.rows, "", "Size"));
      tr.appendChild(cell(when(r.start), "", "Start"));
      const seconds = Math.max(0, Math.round((Date.parse(r.end) - Date.parse(r.start)) / 1000));
      tr.appendChild(cell(idle(seconds), "", "Length"));
      tr.appendChild(cell(r.ended, "", "Ended"));
      const file = document.createElement("td");
      const download = document.createElement("a");
      download.href = "/recordings/" + path;
      download.textContent = "ttyrec";
      file.appendChild(download);
      tr.appendChild(file);
      body.appendChild(tr);
    }
  } catch (e) {
    // The live list says when the server is not answering.
  }
}
showVisitor();
refresh();
refreshRecent();
setInterval(refresh, 2000);
setInterval(refreshRecent, 10000);
