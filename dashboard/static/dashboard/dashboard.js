// Refresh the dashboard's figures every 30 s from /cache/dashboard and its SVG charts, without a full reload.
(function () {
  "use strict";
  const REFRESH_MS = 30000;
  const root = document.getElementById("cache-dashboard");
  if (!root) return;
  let period = "24h";

  function lookup(data, path) {
    return path.split(".").reduce((obj, key) => (obj == null ? obj : obj[key]), data);
  }

  function format(value, kind) {
    if (value === null || value === undefined) return "—";
    if (kind === "pct") return (value * 100).toFixed(1) + " %";
    if (kind === "bytes") return value === 0 ? "no limit" : (value / 1048576).toFixed(1) + " MB";
    if (kind === "duration") return Math.floor(value / 3600) + " h " + Math.floor((value % 3600) / 60) + " min";
    if (kind === "map") return Object.entries(value).map(([k, v]) => k + ": " + v).join(" ");
    return String(value);
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
      el.textContent = format(lookup(data, el.dataset.field), el.dataset.format);
    });
    root.dataset.refreshed = String((Number(root.dataset.refreshed) || 0) + 1);
    refreshCharts();
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

  root.addEventListener("click", (event) => {
    const target = event.target;
    if (target.matches("button.ack")) acknowledge(target);
    if (target.matches("button.period")) {
      period = target.dataset.period;
      root.querySelectorAll("button.period").forEach((b) => b.classList.toggle("active", b === target));
      refreshCharts();
    }
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
