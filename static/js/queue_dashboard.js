// The staff queue dashboard: draws the snapshot (tiles, tables, inline SVG charts) and fetches
// a new one every few seconds, without reloading the page. Text from the server goes in through
// textContent only (error messages carry whatever a run printed).
"use strict";

(function () {
  const root = document.getElementById("queue-dashboard");
  if (!root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const DEPTH_POINTS = 120;
  const refreshMs = 1000 * Number(root.dataset.refreshSeconds || 5);
  const depthSamples = [];  // {t, depth, running}: the queue since this page opened
  let failures = 0;

  // -- small DOM helpers -------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value; else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fill(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: columns, className: "dash-empty"}, emptyText))]));
  }

  // -- formatting --------------------------------------------------------------------------
  function seconds(value) {
    if (value === null || value === undefined) return "–";
    const s = Math.round(value);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }
  function gib(bytes) { return bytes === null || bytes === undefined ? "–" : (bytes / 2 ** 30).toFixed(1); }
  function ago(iso, now) { return iso ? seconds((now - Date.parse(iso)) / 1000) + " ago" : "never"; }
  function percent(value) { return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + " %"; }
  function jobLink(id) {
    return el("a", {href: root.dataset.jobUrl.replace("00000000-0000-0000-0000-000000000000", id)}, id.slice(0, 8));
  }

  // -- sections ----------------------------------------------------------------------------
  function tiles(data) {
    const b = data.broker, t = data.timings, s = data.jobs_by_status;
    const depth = b.available ? Object.values(b.queues).reduce((a, n) => a + n, 0) : null;
    const items = [
      ["Queue depth", depth === null ? "unavailable" : depth, b.available ? "messages waiting" : b.error],
      ["Queued / running", `${s.queued} / ${s.running}`, "jobs in the database"],
      ["Workers online", data.workers_online, `of ${data.workers.length} seen in 24 h`],
      ["Finished, 24 h", t.finished, `failure rate ${percent(t.failure_rate)}`],
      ["Queue wait p50 / p95", `${seconds(t.queue_wait_p50)} / ${seconds(t.queue_wait_p95)}`, "created → started"],
      ["Run time p50 / p95", `${seconds(t.run_time_p50)} / ${seconds(t.run_time_p95)}`, "started → finished"],
      ["Stuck", data.stuck.length, `silent > ${seconds(data.stuck_after_seconds)}`],
    ];
    document.getElementById("dash-tiles").replaceChildren(...items.map(([label, value, note]) =>
      el("div", {className: "dash-tile" + ((label === "Stuck" && value) || value === "unavailable" ? " dash-bad" : "")},
        el("div", {className: "dash-tile-label"}, label), el("div", {className: "dash-tile-value"}, value),
        el("div", {className: "dash-tile-note"}, note))));
  }

  function workers(data, now) {
    const rows = data.workers.map((w) => el("tr", {className: w.online ? "" : "dash-offline", "data-worker": w.name},
      el("td", {}, w.name), el("td", {}, el("span", {className: "dash-badge " + (w.online ? "dash-ok" : "dash-off")},
        w.online ? "online" : "offline")),
      el("td", {}, w.device || "–"), el("td", {}, `${gib(w.memory_used)} / ${gib(w.memory_total)} GiB`),
      el("td", {}, ...(w.job_ids.length ? w.job_ids.map(jobLink) : ["idle"])),
      el("td", {}, w.processes ?? "–"), el("td", {}, w.tasks_done ?? "–"), el("td", {}, ago(w.last_seen, now))));
    fill(document.querySelector("#workers-table tbody"), rows, "No worker has reported in the last 24 hours.", 8);
    document.getElementById("workers-note").textContent = data.inspect_error ||
      "Online: answered Celery's ping just now. Device and memory: the worker's own heartbeat.";
  }

  function stuck(data, now) {
    const canRequeue = root.dataset.canRequeue === "1";
    const rows = data.stuck.map((j) => el("tr", {},
      el("td", {}, canRequeue ? el("input", {type: "checkbox", name: "job", value: j.id, checked: true,
        "aria-label": `requeue ${j.id}`}) : ""),
      el("td", {}, jobLink(j.id)), el("td", {}, j.owner), el("td", {}, j.worker || "–"), el("td", {}, j.attempts),
      el("td", {}, percent(j.progress)), el("td", {}, ago(j.last_heartbeat, now))));
    fill(document.querySelector("#stuck-table tbody"), rows, "None: every running job reports.", 7);
    const button = document.getElementById("requeue-stuck");
    if (button) button.disabled = !data.stuck.length;
    document.getElementById("stuck-note").textContent =
      `(running, no heartbeat for ${seconds(data.stuck_after_seconds)}; requeued, they resume from their checkpoints)`;
  }

  function lastFailures(data) {
    const rows = data.last_failures.map((f) => el("tr", {},
      el("td", {}, jobLink(f.id)), el("td", {}, f.owner), el("td", {}, f.finished ? new Date(f.finished).toLocaleString() : "–"),
      el("td", {}, f.worker || "–"), el("td", {}, f.attempts), el("td", {className: "dash-error"}, f.error)));
    fill(document.querySelector("#failures-table tbody"), rows, "No failed jobs.", 6);
  }

  // -- charts (inline SVG) -----------------------------------------------------------------
  function frame(width, height) {
    return svg("svg", {viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", preserveAspectRatio: "none"});
  }

  function throughputChart(data) {
    const W = 480, H = 160, pad = 22, hours = data.throughput;
    const max = Math.max(1, ...hours.map((h) => h.succeeded + h.failed));
    const bar = (W - pad) / hours.length;
    const chart = frame(W, H);
    chart.append(svg("title", {}, "Jobs finished per hour: succeeded (green) and failed (red)"));
    hours.forEach((h, i) => {
      const x = pad + i * bar, ok = (H - pad) * h.succeeded / max, bad = (H - pad) * h.failed / max;
      const label = `${new Date(h.hour).getHours()}:00 — ${h.succeeded} succeeded, ${h.failed} failed`;
      const group = svg("g", {}); group.append(svg("title", {}, label));
      group.append(svg("rect", {x: x + 1, y: H - pad - ok, width: bar - 2, height: ok, class: "bar-ok"}));
      group.append(svg("rect", {x: x + 1, y: H - pad - ok - bad, width: bar - 2, height: bad, class: "bar-bad"}));
      chart.append(group);
      if (i % 6 === 0) chart.append(svg("text", {x, y: H - 6, class: "axis"}, `${new Date(h.hour).getHours()}h`));
    });
    chart.append(svg("text", {x: 0, y: 12, class: "axis"}, String(max)));
    document.getElementById("chart-throughput").replaceChildren(chart);
  }

  function depthChart() {
    const W = 480, H = 160, pad = 22;
    const chart = frame(W, H);
    chart.append(svg("title", {}, "Queue depth (blue) and running jobs (green) at each refresh"));
    const max = Math.max(1, ...depthSamples.map((p) => Math.max(p.depth ?? 0, p.running)));
    const step = (W - pad) / (DEPTH_POINTS - 1), last = depthSamples.length - 1;
    const x = (i) => W - (last - i) * step;  // the newest sample at the right edge
    const y = (v) => H - pad - (H - pad - 4) * v / max;
    for (const [key, cls] of [["depth", "line-depth"], ["running", "line-running"]]) {
      const points = depthSamples.map((p, i) => p[key] === null ? null : `${x(i)},${y(p[key])}`).filter(Boolean);
      if (points.length) chart.append(svg("polyline", {points: points.join(" "), class: cls}));
    }
    chart.append(svg("text", {x: 0, y: 12, class: "axis"}, String(max)));
    chart.append(svg("text", {x: pad, y: H - 6, class: "axis"}, `last ${depthSamples.length} refreshes`));
    document.getElementById("chart-depth").replaceChildren(chart);
  }

  function statusChart(data) {
    const W = 480, H = 160, entries = Object.entries(data.jobs_by_status);
    const max = Math.max(1, ...entries.map(([, n]) => n));
    const row = H / entries.length;
    const chart = frame(W, H);
    entries.forEach(([status, n], i) => {
      const width = (W - 150) * n / max;
      chart.append(svg("text", {x: 0, y: i * row + row * 0.65, class: "axis"}, status));
      chart.append(svg("rect", {x: 90, y: i * row + 3, width, height: row - 6, class: `status-${status}`}));
      chart.append(svg("text", {x: 96 + width, y: i * row + row * 0.65, class: "axis"}, String(n)));
    });
    document.getElementById("chart-status").replaceChildren(chart);
  }

  // -- refresh -----------------------------------------------------------------------------
  function draw(data) {
    const now = Date.parse(data.generated);
    const b = data.broker;
    depthSamples.push({t: now, depth: b.available ? Object.values(b.queues).reduce((a, n) => a + n, 0) : null,
      running: data.jobs_by_status.running});
    if (depthSamples.length > DEPTH_POINTS) depthSamples.shift();
    tiles(data); workers(data, now); stuck(data, now); lastFailures(data);
    throughputChart(data); depthChart(); statusChart(data);
    const alert = document.getElementById("dash-alert");
    alert.hidden = b.available;
    alert.textContent = b.available ? "" : `Broker unavailable: ${b.error}`;
    document.getElementById("dash-updated").textContent = `Updated ${new Date(now).toLocaleTimeString()}; ` +
      `refreshes every ${refreshMs / 1000} s.`;
    root.dataset.generated = data.generated;
  }

  async function refresh() {
    try {
      const response = await fetch(root.dataset.url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.redirected || !response.ok) throw new Error(`the server answered ${response.status}`);
      draw(await response.json());
      failures = 0;
    } catch (error) {
      failures += 1;
      document.getElementById("dash-updated").textContent =
        `Could not refresh (${error.message}); showing the last figures, retrying.`;
    }
    // Back off while the server does not answer, up to a minute.
    setTimeout(refresh, Math.min(60000, refreshMs * 2 ** Math.min(failures, 4)));
  }

  draw(JSON.parse(document.getElementById("dashboard-data").textContent));
  setTimeout(refresh, refreshMs);
})();
