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

const HOUR = 3600;
// Colours of routes in the chart, in turn (the legend names them).
const SHADES = 6;

function net(row) {
  return Math.max(0, row.earned - row.refunded);
}

function routeName(route) {
  return route === "" ? "(unnamed)" : route;
}

// What each route kept per hour over the last 24 hours, one stacked chart per unit, from
// the earnings ledger (every instance's, kept in the store).
function chart(earnings) {
  const end = (Math.floor(earnings.now / HOUR) + 1) * HOUR;
  const start = end - 24 * HOUR;
  const units = {};
  for (const row of earnings.hours) {
    if (!net(row) || row.hour < start) continue;
    const unit = units[row.unit] || (units[row.unit] = { routes: [], bins: [] });
    if (!unit.routes.includes(row.route)) unit.routes.push(row.route);
    const i = (row.hour - start) / HOUR;
    const bin = unit.bins[i] || (unit.bins[i] = []);
    bin.push(row);
  }
  const host = $("chart");
  host.replaceChildren();
  const names = Object.keys(units);
  if (names.length === 0) host.textContent = "Nothing kept in the last 24 hours.";
  const svgNs = "http://www.w3.org/2000/svg";
  const svgEl = (name, attributes) => {
    const el = document.createElementNS(svgNs, name);
    for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value);
    return el;
  };
  for (const unitName of names) {
    const unit = units[unitName];
    // Routes in the order of what they kept over the period (the ledger's order).
    unit.routes.sort((a, b) =>
      earnings.routes.findIndex((r) => r.unit === unitName && r.route === a) -
      earnings.routes.findIndex((r) => r.unit === unitName && r.route === b));
    const totals = unit.bins.map((bin) => (bin || []).reduce((sum, row) => sum + net(row), 0));
    const top = Math.max(1, ...totals.filter((t) => t !== undefined));
    const width = 720, height = 160, pad = 24, step = (width - 2 * pad) / 24;
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height + 30}`, role: "img",
      "aria-label": `kept per hour and route in ${unitName}` });
    svg.dataset.unit = unitName;
    svg.appendChild(svgEl("line", { class: "axis", x1: pad, x2: width - pad, y1: height, y2: height }));
    for (let i = 0; i < 24; i++) {
      let y = height;
      for (const row of unit.bins[i] || []) {
        const value = net(row);
        if (!value) continue;
        const h = value / top * (height - 20);
        y -= h;
        const shade = unit.routes.indexOf(row.route) % SHADES;
        const bar = svgEl("rect", { class: `bar shade-${shade}`, x: pad + i * step + 2, y,
          width: step - 4, height: h });
        bar.dataset.value = value;
        bar.dataset.route = row.route;
        const title = document.createElementNS(svgNs, "title");
        title.textContent = `${when((start + i * HOUR) * 1000).slice(11, 16)} ${routeName(row.route)}: ${value} ${unitName}`;
        bar.appendChild(title);
        svg.appendChild(bar);
      }
      if (i % 3 === 0) {
        const label = svgEl("text", { x: pad + i * step, y: height + 14 });
        label.textContent = when((start + i * HOUR) * 1000).slice(11, 16);
        svg.appendChild(label);
      }
    }
    const label = svgEl("text", { x: pad, y: 12 });
    label.textContent = `${unitName}, highest hour ${top}`;
    svg.appendChild(label);
    host.appendChild(svg);
    const legend = document.createElement("ul");
    legend.className = "legend";
    unit.routes.forEach((route, n) => {
      const item = document.createElement("li");
      item.className = `shade-${n % SHADES}`;
      item.textContent = routeName(route);
      legend.appendChild(item);
    });
    host.appendChild(legend);
  }
  $("chart-caption").textContent =
    "Kept per hour (UTC) and route, last 24 hours: prices and fees less refunds, every instance's.";
}

function showTotals(audit, earnings) {
  const midnight = Math.floor(earnings.now / 86400) * 86400;
  const cards = $("totals");
  cards.replaceChildren();
  for (const unit of audit.units) {
    // Summed before subtracting: a refund can land in the hour after its payment.
    const rows = earnings.hours.filter((row) => row.unit === unit.unit && row.hour >= midnight);
    const todays = Math.max(0, rows.reduce((sum, row) => sum + row.earned - row.refunded, 0));
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
    const [audit, liabilities, passes, activity, earnings] = await Promise.all([
      api("/admin/audit"),
      api("/admin/liabilities"),
      api("/admin/passes"),
      api("/admin/activity?limit=50"),
      api("/admin/earnings?hours=24"),
    ]);
    const recent = activity.activity;
    showTotals(audit, earnings);
    chart(earnings);
    fill("routes", earnings.routes, [
      [(r) => r.unit], [(r) => routeName(r.route)], [(r) => r.requests, true],
      [(r) => r.failed, true], [(r) => r.earned, true], [(r) => r.refunded, true],
      [(r) => r.net, true],
    ]);
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
    fill("activity", recent, [
      [(e) => when(e.at_ms)], [(e) => e.kind.replace(/_/g, " ")], [(e) => e.route || ""],
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
