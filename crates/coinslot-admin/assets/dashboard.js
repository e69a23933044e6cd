// The operator's dashboard: every figure comes from the admin API, with the token the
// operator types in (kept in sessionStorage, gone with the tab).
"use strict";

const KEY = "coinslot-admin-token";
const $ = (id) => document.getElementById(id);
let prices = null;

async function api(path, options = {}) {
  const token = sessionStorage.getItem(KEY) || "";
  const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  row.appendChild(td);
  return td;
}

function fill(tableId, rows, columns) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    for (const [get, numeric] of columns) cell(row, String(get(item)), numeric);
    body.appendChild(row);
  }
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

// What an activity entry added to (or took from) what the service kept.
function kept(entry) {
  switch (entry.kind) {
    case "paid": return entry.amount + entry.fee;
    case "swapped": return entry.fee;
    case "refunded": return -entry.amount;
    default: return 0;
  }
}

// Earned per hour over the last 24 hours, per unit, from the recent activity.
function chart(activity) {
  const hour = 3600 * 1000;
  const end = Math.ceil(Date.now() / hour) * hour;
  const start = end - 24 * hour;
  const units = {};
  for (const entry of activity) {
    const value = kept(entry);
    if (!value || entry.at_ms < start) continue;
    const bins = units[entry.unit] || (units[entry.unit] = new Array(24).fill(0));
    bins[Math.floor((entry.at_ms - start) / hour)] += value;
  }
  const host = $("chart");
  host.replaceChildren();
  const names = Object.keys(units);
  if (names.length === 0) {
    host.textContent = "Nothing earned in the last 24 hours of this instance's recent activity.";
  }
  const svgNs = "http://www.w3.org/2000/svg";
  for (const unit of names) {
    const bins = units[unit];
    const top = Math.max(1, ...bins);
    const width = 720, height = 160, pad = 24, step = (width - 2 * pad) / 24;
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height + 30}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `earned per hour in ${unit}`);
    svg.dataset.unit = unit;
    const axis = document.createElementNS(svgNs, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", pad); axis.setAttribute("x2", width - pad);
    axis.setAttribute("y1", height); axis.setAttribute("y2", height);
    svg.appendChild(axis);
    bins.forEach((value, i) => {
      const bar = document.createElementNS(svgNs, "rect");
      const h = Math.max(0, value) / top * (height - 20);
      bar.setAttribute("class", "bar");
      bar.setAttribute("x", pad + i * step + 2);
      bar.setAttribute("y", height - h);
      bar.setAttribute("width", step - 4);
      bar.setAttribute("height", h);
      bar.dataset.value = value;
      const title = document.createElementNS(svgNs, "title");
      title.textContent = `${when(start + i * 3600 * 1000).slice(11, 16)}: ${value} ${unit}`;
      bar.appendChild(title);
      svg.appendChild(bar);
      if (i % 3 === 0) {
        const label = document.createElementNS(svgNs, "text");
        label.setAttribute("x", pad + i * step);
        label.setAttribute("y", height + 14);
        label.textContent = when(start + i * 3600 * 1000).slice(11, 16);
        svg.appendChild(label);
      }
    });
    const label = document.createElementNS(svgNs, "text");
    label.setAttribute("x", pad);
    label.setAttribute("y", 12);
    label.textContent = `${unit}, highest hour ${top}`;
    svg.appendChild(label);
    host.appendChild(svg);
  }
  $("chart-caption").textContent =
    "Kept per hour (UTC), last 24 hours: prices and fees less refunds, from this instance's recent activity.";
}

function showTotals(audit, activity) {
  const today = new Date();
  today.setUTCHours(0, 0, 0, 0);
  const cards = $("totals");
  cards.replaceChildren();
  for (const unit of audit.units) {
    let todays = 0;
    for (const entry of activity) {
      if (entry.unit === unit.unit && entry.at_ms >= today.getTime()) todays += kept(entry);
    }
    for (const [label, value, id] of [
      [`kept today (UTC), ${unit.unit}`, todays, `today-${unit.unit}`],
      [`kept in all, ${unit.unit}`, unit.retained, `kept-${unit.unit}`],
      [`came in, ${unit.unit}`, unit.came_in, `came-in-${unit.unit}`],
    ]) {
      const card = document.createElement("div");
      card.className = "card";
      card.id = id;
      const figure = document.createElement("b");
      figure.textContent = value;
      const text = document.createElement("span");
      text.textContent = label;
      card.append(figure, text);
      cards.appendChild(card);
    }
  }
}

function showPrices() {
  const rows = [];
  (prices.upstreams || []).forEach((upstream, u) => {
    (upstream.routes || []).forEach((route, r) => rows.push({ upstream, route, u, r }));
  });
  const body = $("prices").querySelector("tbody");
  body.replaceChildren();
  for (const { upstream, route, u, r } of rows) {
    const row = document.createElement("tr");
    cell(row, upstream.name);
    cell(row, route.method || "*");
    cell(row, route.path);
    const priced = cell(row, "", true);
    if (route.free) {
      priced.textContent = "free";
    } else if (route.price !== undefined) {
      const input = document.createElement("input");
      input.type = "number";
      input.min = "0";
      input.value = route.price;
      input.dataset.upstream = u;
      input.dataset.route = r;
      input.setAttribute("aria-label", `price of ${route.method || "*"} ${route.path}`);
      priced.appendChild(input);
    } else {
      priced.textContent = route.usage ? "by usage" : "—";
    }
    cell(row, route.unit || "sat");
    body.appendChild(row);
  }
  $("prices-state").textContent = `Version ${prices.version} of the price list, shared by every instance.`;
}

async function load() {
  $("error").textContent = "";
  try {
    const [audit, liabilities, passes, activity] = await Promise.all([
      api("/admin/audit"),
      api("/admin/liabilities"),
      api("/admin/passes"),
      api("/admin/activity?limit=10000"),
    ]);
    const recent = activity.activity;
    showTotals(audit, recent);
    chart(recent);
    $("audit-state").textContent = audit.ok
      ? "The books add up."
      : "The books do not add up: " + audit.violations.join("; ");
    $("audit-state").className = audit.ok ? "ok" : "error";
    fill("audit", audit.units, [
      [(u) => u.unit], [(u) => u.came_in, true], [(u) => u.credit, true],
      [(u) => u.outstanding, true], [(u) => u.account_balance, true], [(u) => u.retained, true],
    ]);
    fill("sessions", liabilities.units, [
      [(u) => u.unit], [(u) => u.accounts, true], [(u) => u.account_balance, true],
    ]);
    fill("passes", passes.passes, [
      [(p) => p.id.slice(0, 12)], [(p) => p.scope], [(p) => when(p.expires_at * 1000)],
    ]);
    fill("activity", recent.slice(0, 50), [
      [(e) => when(e.at_ms)], [(e) => e.kind.replace(/_/g, " ")],
      [(e) => e.unit || ""], [(e) => (e.amount === undefined ? "" : e.amount), true],
    ]);
    try {
      prices = await api("/admin/prices");
      $("prices-form").hidden = false;
      showPrices();
    } catch (error) {
      if (error.status !== 404) throw error;
      $("prices-form").hidden = true;
      $("prices-state").textContent = "This server has no price table (no [proxy] upstreams).";
    }
  } catch (error) {
    if (error.status === 401) return signOut("The token was refused: " + error.message);
    $("error").textContent = error.message;
  }
}

async function savePrices(event) {
  event.preventDefault();
  const next = JSON.parse(JSON.stringify({ upstreams: prices.upstreams }));
  for (const input of $("prices").querySelectorAll("input[type=number]")) {
    next.upstreams[input.dataset.upstream].routes[input.dataset.route].price = Number(input.value);
  }
  await changePrices({ method: "PUT", body: JSON.stringify(next), headers: { "Content-Type": "application/json" } });
}

async function changePrices(options) {
  const result = $("prices-result");
  try {
    prices = await api("/admin/prices", options);
    showPrices();
    result.textContent = `Saved: version ${prices.version}.`;
    result.className = "ok";
  } catch (error) {
    result.textContent = "Not saved: " + error.message;
    result.className = "error";
  }
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  $("board").hidden = true;
  $("signin").hidden = false;
  $("refresh").hidden = $("signout").hidden = true;
  $("who").textContent = "";
  $("signin-error").textContent = message || "";
}

async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  try {
    const who = await api("/admin/whoami");
    $("who").textContent = `${who.sub} (${who.scopes.join(", ")})`;
  } catch (error) {
    return signOut("The token was refused: " + error.message);
  }
  $("signin").hidden = true;
  $("board").hidden = false;
  $("refresh").hidden = $("signout").hidden = false;
  await load();
}

// A failure the page did not expect is shown, not lost in the console.
window.addEventListener("error", (event) => { $("error").textContent = event.message; });
window.addEventListener("unhandledrejection", (event) => {
  $("error").textContent = String(event.reason && event.reason.message || event.reason);
});

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim());
});
$("signout").addEventListener("click", () => signOut());
$("refresh").addEventListener("click", load);
$("prices-form").addEventListener("submit", savePrices);
$("prices-reset").addEventListener("click", () => changePrices({ method: "DELETE" }));
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
