"use strict";
// The games' names as the menus show them (NH36), by id: from the server.
const GAME_NAMES = JSON.parse(document.getElementById("game-names").textContent || "{}");
function gameName(id) {
  return GAME_NAMES[id] || id;
}
function idle(seconds) {
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + Math.floor(seconds % 3600 / 60) + "m";
  return Math.floor(seconds / 86400) + "d " + Math.floor(seconds % 86400 / 3600) + "h";
}
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
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
      tr.appendChild(cell(gameName(s.game_id)));
      tr.appendChild(cell(s.terminal.cols + "x" + s.terminal.rows));
      tr.appendChild(cell(s.start_time.replace("T", " ").replace(/\.\d+Z$|Z$/, "")));
      tr.appendChild(cell(s.detached ? "detached" : idle(s.idle_seconds)));
      tr.appendChild(cell(String(s.spectator_count), "num"));
      tr.appendChild(cell(s.extra_info || "", "extra"));
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
      tr.appendChild(cell(gameName(r.game_id)));
      tr.appendChild(cell(r.cols + "x" + r.rows));
      tr.appendChild(cell(when(r.start)));
      const seconds = Math.max(0, Math.round((Date.parse(r.end) - Date.parse(r.start)) / 1000));
      tr.appendChild(cell(idle(seconds)));
      tr.appendChild(cell(r.ended));
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
refresh();
refreshRecent();
setInterval(refresh, 2000);
setInterval(refreshRecent, 10000);
