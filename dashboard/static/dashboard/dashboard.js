// Refresh the dashboard's figures every 10 s from /cache/dashboard and its SVG charts every 30 s, without a reload.
// Every figure is written with its unit; rates as percentages, times as local time with the zone.
(function () {
  "use strict";
  const REFRESH_MS = 10000;
  const CHART_EVERY = 3;
  const root = document.getElementById("cache-dashboard");
  if (!root) return;
  let period = root.dataset.period || "24h";
  const BREAKER_WORDS = { closed: "reachable", open: "failing, calls paused", half_open: "recovering, trying again" };

  function lookup(data, path) {
    return path.split(".").reduce((obj, key) => (obj == null ? obj : obj[key]), data);
  }

  function ms(value) {
    if (value >= 100) return value.toFixed(0) + " ms";
    if (value >= 10) return value.toFixed(1) + " ms";
    return Number(value.toPrecision(3)) + " ms";
  }

  function duration(seconds) {
    const days = Math.floor(seconds / 86400);
    const rest = seconds % 86400;
    const text = Math.floor(rest / 3600) + " h " + Math.floor((rest % 3600) / 60) + " min";
    return days ? days + " d " + text : text;
  }

  function localTime(value, seconds) {
    const date = new Date(value);
    if (isNaN(date)) return String(value);
    const options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
    if (seconds) options.second = "2-digit";
    return date.toLocaleString(undefined, options);
  }

  function breakerText(name, state) {
    const raw = String(state).toLowerCase();
    const label = name === "redis" ? "Redis" : name.includes(":") ? "JobNimbus " + name.split(":")[1] : name;
    return { text: label + ": " + (BREAKER_WORDS[raw] || raw), detail: "circuit breaker " + name + " is " + raw };
  }

  function format(value, kind) {
    if (value === null || value === undefined) return "—";
    if (kind === "pct") return (value * 100).toFixed(1) + " %";
    if (kind === "ms") return ms(value);
    if (kind === "count") return Number(value).toLocaleString();
    if (kind === "bytes") return value === 0 ? "no limit" : (value / 1048576).toFixed(1) + " MB";
    if (kind === "duration") return duration(value);
    if (kind === "time") return localTime(value, true);
    return String(value);
  }

  function renderBreakers(el, data) {
    // Words from the server when it gives them ("reachability"), the breakers' states otherwise.
    const items = Array.isArray(data.reachability)
      ? data.reachability.map((b) => ({ text: b.text, detail: b.detail || "" }))
      : Object.entries(data.breakers || {}).map(([name, state]) => breakerText(name, state));
    el.replaceChildren();
    items.forEach((item, i) => {
      if (i) el.append(" · ");
      const span = document.createElement("span");
      span.textContent = item.text;
      if (item.detail) span.title = item.detail;
      el.append(span);
    });
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }

  function renderTools(data) {
    const body = root.querySelector("#tools tbody");
    if (!body || !Array.isArray(data.tools)) return;
    body.replaceChildren();
    data.tools.forEach((t) => {
      const row = document.createElement("tr");
      [t.tool, format(t.requests, "count"), format(t.hit_rate, "pct"), format(t.miss, "count"),
        format(t.avg_cached_ms, "ms"), format(t.avg_uncached_ms, "ms"), format(t.p95_cached_ms, "ms")]
        .forEach((text) => cell(row, text));
      body.append(row);
    });
    if (!data.tools.length) {
      const row = document.createElement("tr");
      cell(row, "No traffic yet.");
      row.firstChild.colSpan = 7;
      body.append(row);
    }
  }

  function refreshCharts() {
    const stamp = Date.now();
    root.querySelectorAll("img.chart").forEach((img) => {
      img.src = root.dataset.chartUrl + "?metric=" + img.dataset.metric + "&period=" + period + "&t=" + stamp;
    });
  }

  async function refresh() {
    const response = await fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    root.querySelectorAll("[data-field]").forEach((el) => {
      if (el.dataset.format === "breakers") return renderBreakers(el, data);
      const value = lookup(data, el.dataset.field);
      if ((value === undefined || value === null) && el.dataset.fallback) return;  // keep what the server wrote
      el.textContent = format(value, el.dataset.format);
      if (el.dataset.format === "time" && value) el.setAttribute("datetime", value);
    });
    renderTools(data);
    const count = (Number(root.dataset.refreshed) || 0) + 1;
    root.dataset.refreshed = String(count);
    if (count % CHART_EVERY === 1) refreshCharts();  // charts every 30 s: their buckets are minutes at the finest
  }

  async function acknowledge(button) {
    const url = root.dataset.ackUrl.replace("ID", button.dataset.id);
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf, "Content-Type": "application/json" },
      body: "{}",
    });
    const row = button.closest("tr");
    if (response.ok) {
      const alert = await response.json();
      row.querySelector(".state").textContent = alert.state;
      button.replaceWith(document.createTextNode("by " + alert.acknowledged_by));
    } else {
      button.textContent = "failed (" + response.status + ")";
    }
  }

  // Timestamps the server wrote in its own zone are shown in the reader's.
  root.querySelectorAll("time[datetime]").forEach((el) => {
    if (el.dataset.field !== "generated") el.textContent = localTime(el.getAttribute("datetime"));
  });

  root.addEventListener("click", (event) => {
    const target = event.target;
    if (target.matches("button.ack")) acknowledge(target);
    if (target.matches("button.period")) {
      period = target.dataset.period;
      root.dataset.period = period;
      root.querySelectorAll("button.period").forEach((b) => b.classList.toggle("active", b === target));
      refreshCharts();
    }
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
