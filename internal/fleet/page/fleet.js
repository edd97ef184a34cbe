// The fleet page: GET /v1/fleet with the API token every second, drawn as
// a table. No external assets; the token stays in sessionStorage.
"use strict";

const TOKEN_KEY = "anycastdns-token";
const POLL_MS = 1000;

function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function badge(text, kind) {
  return el("span", text, "badge " + kind);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "now";
  if (seconds < 90) return Math.round(seconds) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}

function stateCell(m) {
  const td = el("td");
  const kind = { connected: "ok", disconnected: "warn", revoked: "bad" }[m.state] || "warn";
  td.append(badge(m.state, kind));
  return td;
}

function healthCell(m) {
  const td = el("td");
  if (m.state !== "connected") {
    td.append(el("span", "unknown", "muted"));
    return td;
  }
  if (m.drained) {
    td.append(badge("drained", "warn"));
    return td;
  }
  const kind = m.health === "healthy" ? "ok" : m.health === "starting" ? "warn" : "bad";
  td.append(badge(m.health || "unknown", kind));
  return td;
}

function announcedCell(m) {
  const td = el("td");
  if (!m.bgp) {
    td.append(el("span", "no BGP", "muted"));
  } else if (m.announced.length === 0) {
    td.append(badge("withdrawn", "bad"));
  } else if (m.level && m.level !== "normal") {
    td.append(badge(m.level, "warn"), el("span", " " + m.announced.join(" "), "muted"));
    td.title = "level set by " + (m.level_source || "?");
  } else {
    td.append(badge("announced", "ok"), el("span", " " + m.announced.join(" "), "muted"));
  }
  return td;
}

function lagCell(m) {
  const td = el("td");
  const behind = m.zones_behind + m.zones_missing;
  if (behind === 0) {
    td.append(badge("in sync", "ok"));
  } else {
    let text = behind + (behind === 1 ? " zone" : " zones") + " behind";
    if (m.max_serial_lag > 0) text += ", up to " + m.max_serial_lag + " serials";
    if (m.lag_seconds > 0) text += ", " + m.lag_seconds.toFixed(1) + " s";
    td.append(badge(text, m.state === "connected" ? "warn" : "bad"));
    td.title = m.behind.map(z => z.zone + " " + z.serial + "/" + z.current).join("\n");
  }
  return td;
}

function row(m) {
  const tr = el("tr");
  tr.dataset.node = m.node;
  tr.dataset.state = m.state;
  tr.dataset.health = m.drained ? "drained" : (m.health || "");
  tr.dataset.announced = String(m.announced.length);
  tr.dataset.level = m.level || "";
  if (m.state !== "connected") tr.className = "gone";
  tr.append(
    el("td", m.pop || "—"),
    el("td", m.node),
    stateCell(m),
    healthCell(m),
    announcedCell(m),
    lagCell(m),
    el("td", m.state === "connected" ? m.qps.toFixed(1) : "—", "num"),
    el("td", m.state === "connected" ? m.tcp_conns : "—", "num"),
    el("td", m.zones_served + (m.zones_expired ? " (" + m.zones_expired + " expired)" : ""), "num"),
    el("td", age(m.heartbeat_age_seconds)),
    el("td", m.version || "—", "muted"),
  );
  if (m.last_error && m.state !== "connected") tr.title = m.last_error;
  return tr;
}

let updates = 0;

function draw(view) {
  const body = document.getElementById("members");
  body.replaceChildren(...view.members.map(row));
  const connected = view.members.filter(m => m.state === "connected").length;
  const healthy = view.members.filter(m => m.state === "connected" && m.health === "healthy" && !m.drained).length;
  const announcing = view.members.filter(m => m.state === "connected" && m.announced.length > 0).length;
  document.getElementById("summary").textContent =
    view.members.length + " members: " + connected + " connected, " + healthy + " healthy, " +
    announcing + " announcing; " + view.zones + " zones on the control plane";
  updates++;
  const footer = document.getElementById("updated");
  footer.textContent = "updated " + new Date(view.generated).toLocaleTimeString() + " (every " + POLL_MS / 1000 + " s)";
  footer.dataset.updates = String(updates);
  document.getElementById("fleet").hidden = false;
}

function showError(msg) {
  const e = document.getElementById("error");
  e.textContent = msg;
  e.hidden = !msg;
}

async function poll(token) {
  try {
    const resp = await fetch("/v1/fleet", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError("The token was refused.");
      askToken();
      return;
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    showError("");
    draw(body);
  } catch (err) {
    showError("No answer from the control plane: " + err.message);
  }
  setTimeout(() => poll(token), POLL_MS);
}

function askToken() {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("summary").textContent = "";
  form.onsubmit = ev => {
    ev.preventDefault();
    const t = document.getElementById("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    form.hidden = true;
    poll(t);
  };
}

const token = takeToken();
if (token) poll(token); else askToken();
