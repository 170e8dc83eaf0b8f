// The tables and cards, each redrawn whole from one API answer.

import { clock, compact, count, fill, h, moment, ms, none, percent, usd, when } from "./dom.js";

export function totals(node, data, status) {
  const t = data.totals;
  const tokens = t.input_tokens + t.output_tokens + t.cache_read_tokens + t.cache_write_tokens;
  const card = (title, value, note, cls) =>
    h("div", { class: "card" + (cls ? " " + cls : "") }, h("div", { class: "card-title" }, title),
      h("div", { class: "card-value" }, value), note ? h("div", { class: "card-note muted" }, note) : null);
  fill(
    node,
    card("Requests", count(t.requests)),
    card("Errors", count(t.errors), percent(t.requests ? t.errors / t.requests : 0), t.errors ? "warn" : ""),
    card("Tokens", compact(tokens), `${compact(t.input_tokens)} in · ${compact(t.cache_read_tokens)} cached · ${compact(t.output_tokens)} out`),
    card("Cost", usd(t.cost_usd), t.unpriced ? `${count(t.unpriced)} ${t.unpriced === 1 ? "request" : "requests"} without a price` : null),
    card("In flight", status ? count(status.inflight) : "–", status && status.draining ? "draining" : null),
  );
}

export function providers(table, rows) {
  const body = table.tBodies[0];
  if (!rows.length) {
    fill(body, h("tr", {}, h("td", { colSpan: 10, class: "muted" }, "No requests in this range.")));
    return;
  }
  fill(
    body,
    rows.map((r) =>
      h("tr", { dataset: { provider: r.provider ?? "" } },
        h("td", {}, r.provider ?? none("(not routed)")),
        h("td", { class: "num" }, count(r.requests)),
        h("td", { class: "num" }, count(r.errors)),
        h("td", { class: "num" + (r.error_rate > 0 ? " bad" : "") }, percent(r.error_rate)),
        h("td", { class: "num" }, ms(r.latency_ms.p50)),
        h("td", { class: "num" }, ms(r.latency_ms.p95)),
        h("td", { class: "num" }, ms(r.latency_ms.p99)),
        h("td", { class: "num" }, ms(r.ttfb_ms.p50)),
        h("td", { class: "num" }, ms(r.ttfb_ms.p95)),
        h("td", { class: "num" }, ms(r.ttfb_ms.p99)),
      ),
    ),
  );
}

export function cooldowns(node, rows) {
  if (!rows.length) {
    fill(node, h("p", { class: "muted" }, "No provider or key is cooling down."));
    return;
  }
  fill(
    node,
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "What"), h("th", {}, "Name"), h("th", {}, "Until"), h("th", { class: "num" }, "Left"))),
      h("tbody", {}, rows.map((c) =>
        h("tr", {},
          h("td", {}, c.kind),
          h("td", {}, c.name),
          h("td", {}, clock(c.until)),
          h("td", { class: "num" }, `${Math.ceil(c.seconds_left)} s`),
        ))),
    ),
  );
}

function spend(k) {
  if (k.budget_usd === null || k.budget_usd === undefined) return h("span", {}, usd(k.spent_usd), " ", none("no budget"));
  const ratio = k.budget_usd > 0 ? (k.spent_usd ?? 0) / k.budget_usd : 1;
  return h("span", { class: "spend" },
    h("meter", { min: 0, max: 1, low: 0.8, high: 0.95, optimum: 0, value: Math.min(ratio, 1), title: percent(ratio) }),
    ` ${usd(k.spent_usd ?? 0)} of ${usd(k.budget_usd)}`);
}

function limits(k) {
  const parts = [];
  if (k.rpm) parts.push(`${count(k.rpm)} rpm`);
  if (k.tpm) parts.push(`${compact(k.tpm)} tpm`);
  const models = Array.isArray(k.models) ? k.models.join(", ") : k.models;
  if (models) parts.push(`models ${models}`);
  return parts.length ? parts.join(" · ") : none("no limits");
}

function state(k, now) {
  if (k.revoked) return h("span", { class: "bad" }, "revoked");
  if (k.expires_at && when(k.expires_at) < now) return h("span", { class: "bad" }, "expired");
  return k.expires_at ? `expires ${moment(k.expires_at)}` : "active";
}

export function keys(node, data) {
  if (!data.available || !data.data.length) {
    fill(node, h("p", { class: "muted" }, "No gateway keys."));
    return;
  }
  const now = Date.now();
  fill(
    node,
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Spend"), h("th", {}, "Period"), h("th", {}, "Limits"), h("th", {}, "State"))),
      h("tbody", {}, data.data.map((k) =>
        h("tr", {},
          h("td", {}, k.name),
          h("td", {}, spend(k)),
          h("td", {}, k.period ?? "–", k.resets_at ? h("div", { class: "muted small" }, `resets ${moment(k.resets_at)}`) : null),
          h("td", {}, limits(k)),
          h("td", {}, state(k, now)),
        ))),
    ),
  );
}

function statusCell(r) {
  const failed = r.status >= 400 || r.end === "error" || r.end === "broken";
  const text = r.end && r.end !== "ok" && r.end !== "error" ? `${r.status} ${r.end}` : String(r.status);
  return h("td", { class: failed ? "bad" : "good", title: r.error ?? "" }, text);
}

// the provider that answered, else the one last tried (a failure names no provider of its own)
function providerCell(r) {
  const last = r.attempts.length ? r.attempts[r.attempts.length - 1] : null;
  const provider = r.provider ?? (last ? last.provider : null);
  if (!provider) return h("td", {}, none("(not routed)"));
  const model = r.provider ? r.upstream_model : last.model;
  const tries = r.attempts.length > 1 ? ` · ${r.attempts.length} attempts` : "";
  return h("td", { title: r.attempts.map((a) => `${a.provider}/${a.model} → ${a.status ?? "no answer"}`).join("\n") },
    provider, model ? h("span", { class: "muted" }, " " + model) : null, tries);
}

export function feed(table, rows, seen) {
  const body = table.tBodies[0];
  if (!rows.length) {
    fill(body, h("tr", {}, h("td", { colSpan: 11, class: "muted" }, "No requests yet.")));
    return;
  }
  const first = seen.size === 0;
  fill(
    body,
    rows.map((r) => {
      const fresh = !first && !seen.has(r.request_id);
      seen.add(r.request_id);
      const u = r.usage;
      return h("tr", { class: fresh ? "fresh" : "", dataset: { requestId: r.request_id }, title: r.request_id },
        h("td", {}, clock(r.time)),
        h("td", { class: "model" }, r.model ?? none()),
        providerCell(r),
        statusCell(r),
        h("td", { class: "num" }, ms(r.latency_ms)),
        h("td", { class: "num" }, ms(r.ttfb_ms)),
        h("td", { class: "num" }, u ? compact(u.input_tokens + u.cache_read_tokens + u.cache_write_tokens) : "–"),
        h("td", { class: "num" }, u ? compact(u.output_tokens) : "–"),
        h("td", { class: "num" }, usd(r.cost_usd)),
        h("td", {}, r.key_name ?? none("–")),
        h("td", {}, r.client ?? none("–")),
      );
    }),
  );
}

export function status(node, s, refreshed) {
  const parts = [`instance ${s.instance}`];
  if (s.store) {
    const l = s.ledger;
    parts.push(`usage store ${s.store} (${l.store_up ? "up" : "DOWN"})`);
    parts.push(`written ${count(l.written)} · queued ${count(l.queued)} · journaled ${count(l.journaled)} · dropped ${count(l.dropped)}`);
  } else {
    parts.push("usage ledger off");
  }
  parts.push(`updated ${clock(refreshed / 1000)}`);
  fill(node, parts.join(" — "));
  node.classList.toggle("bad", Boolean(s.ledger && (s.ledger.dropped || !s.ledger.store_up)));
}
