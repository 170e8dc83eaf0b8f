// The dashboard: sign in when the gateway asks for a key, then poll. The feed and this instance's
// state every 2 s; charts and the provider table every 10 s for the short ranges, less often for
// the long ones (each is a scan of the range); keys every 30 s; at once when the range or grouping
// changes. Nothing polls while the tab is hidden.

import { ApiError, call, key } from "./api.js";
import { TimeChart } from "./charts.js";
import { fill } from "./dom.js";
import * as panels from "./panels.js";

const $ = (id) => document.getElementById(id);

const FAST = 2000;
const SLOW = 10000;
const SLOW_FOR = { "6h": 30000, "24h": 30000, "7d": 60000, "30d": 120000 };
const KEYS = 30000;
const HINTS = {
  admin_key: "This gateway's dashboard needs its admin key (server.admin_key).",
  api_keys: "This gateway needs one of its keys (server.api_keys).",
};

const state = {
  status: null,
  providers: null,
  seen: new Set(),
  timers: [],
  charts: null,
  refreshes: 0,
  slowAt: 0,
  problems: {},
};

function settings() {
  return { since: $("since").value, by: $("by").value };
}

// what each refresh last failed with; the banner shows them until they clear
function report(source, message) {
  state.problems[source] = message;
  const messages = [...new Set(Object.values(state.problems).filter(Boolean))];
  const node = $("banner");
  node.hidden = messages.length === 0;
  fill(node, messages.join(" · "));
}

// one panel's refresh: its failure is shown, and never stops the other panels
async function guarded(source, work) {
  try {
    await work();
    report(source, "");
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut("The key was refused: " + err.message);
      return false;
    }
    report(source, err instanceof ApiError ? err.message : String(err));
    return false;
  }
}

async function refreshFast() {
  await Promise.all([
    guarded("status", async () => {
      const status = await call("status");
      state.status = status;
      fill($("instance"), status.instance);
      panels.cooldowns($("cooldowns"), status.cooldowns);
      panels.status($("status"), status, Date.now());
      if (state.providers) panels.totals($("totals"), state.providers, status);
    }),
    guarded("feed", async () => panels.feed($("feed"), (await call("feed", { limit: 50 })).data, state.seen)),
  ]);
}

async function refreshSlow() {
  const { since, by } = settings();
  state.slowAt = Date.now();
  const ok = await guarded("charts", async () => {
    const [series, providers] = await Promise.all([call("series", { since, by }), call("providers", { since })]);
    for (const chart of state.charts) chart.update(series);
    state.providers = providers;
    panels.providers($("providers"), providers.providers);
    panels.totals($("totals"), providers, state.status);
  });
  if (ok) document.body.dataset.refreshed = String(++state.refreshes);
}

async function refreshKeys() {
  await guarded("keys", async () => panels.keys($("keys"), await call("keys")));
}

function every(ms, fn) {
  fn();
  state.timers.push(setInterval(() => document.hidden || fn(), ms));
}

function stop() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
}

function start(required) {
  $("login").hidden = true;
  $("board").hidden = false;
  $("controls").hidden = false;
  $("logout").hidden = !required;
  if (!state.charts) {
    state.charts = [
      new TimeChart($("chart-requests"), "requests"),
      new TimeChart($("chart-tokens"), "tokens"),
      new TimeChart($("chart-cost"), "cost_usd"),
    ];
  }
  stop();
  every(FAST, refreshFast);
  every(SLOW, () => Date.now() - state.slowAt >= (SLOW_FOR[settings().since] ?? SLOW) - 500 && refreshSlow());
  every(KEYS, refreshKeys);
}

function showLogin(required, message) {
  stop();
  $("board").hidden = true;
  $("controls").hidden = true;
  $("login").hidden = false;
  fill($("login-hint"), HINTS[required] || "");
  fill($("login-error"), message || "");
  $("login-key").focus();
}

// a refused key, from whichever panel saw it first (the others' refusals find it stopped)
function signOut(message) {
  const running = state.timers.length > 0;
  stop();
  key.clear();
  if (running || message === "") boot(message);
}

async function boot(message) {
  let session;
  try {
    session = await call("session");
  } catch (err) {
    showLogin(null, err.message);
    return;
  }
  if (session.authorized) start(session.required);
  else showLogin(session.required, message || (key.get() ? "The key was refused." : ""));
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key.set($("login-key").value.trim());
  $("login-key").value = "";
  boot("The key was refused.");
});
$("logout").addEventListener("click", () => signOut(""));
$("since").addEventListener("change", refreshSlow);
$("by").addEventListener("change", refreshSlow);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.timers.length) {
    refreshFast();
    refreshSlow();
  }
});

boot();
