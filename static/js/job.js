/* The job page, live: follows the job's events (Server-Sent Events pushed by the worker),
 * moves the progress bar, swaps the preview, draws the loss curves (inline SVG), cancels,
 * and shows the result and the visualisations when the job ends — all without reloading.
 *
 * The event stream reconnects by itself (EventSource, with Last-Event-ID) and ends with the
 * job. Where it cannot be had (the server answers 503 without live updates, a proxy drops
 * it, the browser has no EventSource) the page polls status.json instead, quietly.
 * Polling backs off: 1 s after anything changed, then ×1.5 per unchanged answer up
 * to 5 s; after a failed request ×2 up to 30 s. It pauses while the tab is hidden
 * and stops for good when the job has ended.
 */
(function () {
  "use strict";

  var root = document.getElementById("job");
  if (!root) return;

  var FAST = 1000, SLOW = 5000, OFFLINE = 30000;
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2563eb", "#e11d48", "#16a34a", "#f59e0b", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#64748b"];

  var statusUrl = root.dataset.statusUrl;
  var eventsUrl = root.dataset.eventsUrl;
  var source = null; // the EventSource while the page follows the stream; null while it polls
  var state = JSON.parse(document.getElementById("job-state").textContent);
  var history = state.loss_history || [];
  var delay = FAST;
  var timer = null;
  var $ = function (id) { return document.getElementById(id); };

  // -- formatting --------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60); s = s % 60;
    if (m < 60) return m + " min" + (s ? " " + s + " s" : "");
    var h = Math.floor(m / 60); m = m % 60;
    return h + " h" + (m ? " " + m + " min" : "");
  }

  function number(v) {
    if (v === null || v === undefined) return "—";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-2)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function termLabel(name) {
    return name.replace(":", " ");
  }

  // -- applying a state ----------------------------------------------------------------

  function signature(s) {
    return [s.status, s.step, s.preview && s.preview.version, s.cancel_requested, s.attempts].join("|");
  }

  function progressText(s) {
    if (s.status === "succeeded") return "Done" + (s.elapsed_seconds ? " in " + duration(s.elapsed_seconds) : "") + ".";
    if (s.status === "failed") return "Failed" + (s.total_steps ? " at step " + s.step + " of " + s.total_steps : "") + ".";
    if (s.status === "cancelled") return "Cancelled" + (s.total_steps ? " at step " + s.step + " of " + s.total_steps : "") + ".";
    if (s.status === "queued") {
      return s.attempts > 0 ? "Queued again after a problem (attempt " + (s.attempts + 1) + " of " + s.max_attempts + ")." : "Queued — waiting for a worker.";
    }
    if (!s.total_steps) return "Starting — loading the network and the images…";
    var text = "Scale " + s.scale + " of " + s.num_scales + " · iteration " + s.iteration + " of " + s.iterations;
    if (s.cancel_requested) text += " · stopping…";
    return text;
  }

  function apply(s) {
    var before = state;
    state = s;
    root.dataset.status = s.status;

    var badge = $("status-badge");
    badge.className = "badge badge-" + s.status + " badge-big";
    badge.textContent = s.status_label;
    if (before.status !== s.status) $("announcer").textContent = "The job is " + s.status_label.toLowerCase() + ".";

    var bar = $("progress");
    var pct = s.status === "succeeded" ? 100 : Math.round((s.progress || 0) * 100);
    bar.value = pct;
    bar.textContent = pct + "%";
    $("progress-text").textContent = progressText(s);
    $("eta").textContent = s.status === "running" && s.eta_seconds ? "About " + duration(s.eta_seconds) + " left" : "";

    $("fact-device").textContent = s.device || "—";
    $("fact-time").textContent = s.elapsed_seconds ? duration(s.elapsed_seconds) : "—";
    $("fact-attempts").textContent = s.attempts + " of " + s.max_attempts;
    if (s.seed !== null && s.seed !== undefined) {
      $("fact-seed").textContent = String(s.seed);
    }

    $("error-box").hidden = s.status !== "failed";
    $("error-text").textContent = s.error || "The worker stopped with no message.";

    var cancelForm = $("cancel-form");
    cancelForm.hidden = s.finished;
    var cancelButton = $("cancel-button");
    cancelButton.disabled = !!s.cancel_requested;
    cancelButton.textContent = s.cancel_requested ? "Stopping…" : "Cancel";

    if (s.loss_history && s.loss_history_after !== undefined) {
      // Only the points after the step this page had: append them.
      history = history.filter(function (p) { return p.step <= s.loss_history_after; }).concat(s.loss_history);
    } else if (s.loss_history) {
      history = s.loss_history;
    }
    drawLoss(history);
    showPicture(s);
    if (s.finished) showFinished(s);
  }

  function showPicture(s) {
    var img = $("stage-image");
    var src = null, caption = "", alt = "";
    var title = document.querySelector("h1").textContent;
    if (s.result) {
      src = s.result.url; caption = "Result"; alt = "The result: " + title;
    } else if (s.preview) {
      src = s.preview.url;
      caption = s.finished ? "Last intermediate image" : "Intermediate image · step " + s.step + " of " + s.total_steps;
      alt = "Intermediate image of " + title;
    }
    $("stage-caption").textContent = caption;
    var placeholder = $("stage-placeholder");
    if (!src) {
      $("stage-placeholder-text").textContent = s.status === "queued" ? "Waiting for a worker…" :
        s.status === "running" ? "Starting…" : "No picture.";
      placeholder.hidden = false;
      placeholder.classList.toggle("is-idle", s.finished);
      return;
    }
    if (img.getAttribute("src") === src) return;
    // Load the new picture first, then swap: no flicker, no broken image while it loads.
    var next = new Image();
    next.onload = function () {
      img.src = src;
      img.alt = alt;
      img.hidden = false;
      placeholder.hidden = true;
      $("stage").classList.remove("is-empty");
    };
    next.src = src;
    if (s.result) {
      $("download-link").href = s.result.download_url;
      $("full-size-link").href = s.result.url;
      $("result-actions").hidden = false;
    }
  }

  function node(tag, className, text) {
    var n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function linkedImage(url, alt) {
    var link = node("a");
    link.href = url; link.target = "_blank"; link.rel = "noopener";
    var img = node("img");
    img.src = url; img.alt = alt; img.loading = "lazy";
    link.append(img);
    return link;
  }

  /* The same markup as the server's (job_detail.html), for a job that ends while watched. */
  function showVisualizations(list, items) {
    var features = items.filter(function (v) { return v.kind === "features"; });
    if (features.length) {
      var group = node("div", "vis-group");
      group.append(node("h3", "", "Feature maps"), node("p", "muted", features[0].about));
      features.forEach(function (vis, i) {
        var details = node("details", "vis vis-features");
        details.dataset.name = vis.name;
        details.open = i === 0;
        var summary = node("summary");
        summary.append(node("code", "", vis.layer), " ", node("span", "muted", vis.role));
        details.append(summary, linkedImage(vis.url, "Feature maps of " + vis.layer + " for the content, the style and the result"));
        group.append(details);
      });
      list.append(group);
    }
    items.filter(function (v) { return v.kind !== "features"; }).forEach(function (vis) {
      var figure = node("figure", "vis vis-" + vis.kind);
      figure.dataset.name = vis.name;
      var caption = node("figcaption");
      caption.append(node("strong", "", vis.title), node("span", "muted", vis.about));
      figure.append(caption, linkedImage(vis.url, vis.title));
      list.append(figure);
    });
  }

  function showFinished(s) {
    var list = $("vis-list");
    if (s.visualizations && s.visualizations.length && !list.children.length) showVisualizations(list, s.visualizations);
    var placeholder = $("vis-placeholder");
    placeholder.hidden = list.children.length > 0;
    if (!list.children.length) placeholder.textContent = "No visualisations for this job.";
    var patches = $("patches-form");
    patches.hidden = !s.patches_url;
    if (s.patches_url) patches.action = s.patches_url;
  }

  // -- the loss chart ------------------------------------------------------------------

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* Total loss and each weighted term against the step, log scale, one line per scale
   * (the jump where a finer scale starts is not a trend), dashed where a scale begins. */
  function drawLoss(points) {
    var svg = $("loss-chart");
    var legend = $("loss-legend");
    var series = {total: []};
    points.forEach(function (p) {
      if (p.loss > 0) series.total.push([p.step, p.loss, p.scale]);
      Object.keys(p.losses || {}).forEach(function (term) {
        var v = p.losses[term];
        if (v > 0) (series[term] = series[term] || []).push([p.step, v, p.scale]);
      });
    });
    var names = Object.keys(series).filter(function (n) { return series[n].length; });
    $("loss-empty").hidden = names.length > 0;
    svg.replaceChildren();
    legend.replaceChildren();
    if (!names.length) { svg.setAttribute("aria-label", "Loss curves: no data yet"); return; }

    var W = 420, H = 250, L = 40, R = 8, T = 8, B = 30;
    var steps = [], logs = [];
    names.forEach(function (n) { series[n].forEach(function (q) { steps.push(q[0]); logs.push(Math.log10(q[1])); }); });
    var x0 = Math.min.apply(null, steps), x1 = Math.max.apply(null, steps);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var y0 = Math.floor(Math.min.apply(null, logs)), y1 = Math.ceil(Math.max.apply(null, logs));
    if (y1 === y0) y1 = y0 + 1;
    var px = function (s) { return L + (s - x0) / (x1 - x0) * (W - L - R); };
    var py = function (v) { return H - B - (Math.log10(v) - y0) / (y1 - y0) * (H - T - B); };

    var grid = el("g", {"class": "grid"});
    var every = Math.max(1, Math.ceil((y1 - y0) / 6));
    for (var d = y0; d <= y1; d += every) {
      var y = py(Math.pow(10, d));
      grid.append(el("line", {x1: L, x2: W - R, y1: y, y2: y}));
      grid.append(el("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, "1e" + d));
    }
    var stepTick = niceStep((x1 - x0) / 6);
    for (var t = Math.ceil(x0 / stepTick) * stepTick; t <= x1; t += stepTick) {
      grid.append(el("text", {x: px(t), y: H - B + 14, "text-anchor": "middle"}, String(t)));
    }
    grid.append(el("text", {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "class": "axis-label"}, "step"));
    svg.append(grid);

    var previous = null;
    points.forEach(function (p) {
      if (previous !== null && p.scale !== previous) {
        svg.append(el("line", {"class": "scale-mark", x1: px(p.step), x2: px(p.step), y1: T, y2: H - B}));
      }
      previous = p.scale;
    });
    svg.append(el("rect", {"class": "frame", x: L, y: T, width: W - L - R, height: H - T - B}));

    names.forEach(function (name, i) {
      var colour = name === "total" ? "currentColor" : PALETTE[(i - 1) % PALETTE.length];
      var d = "", scale = null;
      series[name].forEach(function (q) {
        d += (q[2] === scale ? " L" : " M") + px(q[0]).toFixed(1) + " " + py(q[1]).toFixed(1);
        scale = q[2];
      });
      var kind = name === "total" ? "line total" : name.indexOf("content") === 0 ? "line content" : "line";
      svg.append(el("path", {d: d.trim(), stroke: colour, "class": kind}));
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch" + (name === "total" ? " total" : name.indexOf("content") === 0 ? " content" : "");
      if (name !== "total") swatch.style.color = colour;
      item.append(swatch, document.createTextNode(termLabel(name) + " " + number(series[name][series[name].length - 1][1])));
      legend.append(item);
    });
    var total = series.total;
    if (total.length) {
      svg.setAttribute("aria-label", "Loss curves: total loss " + number(total[0][1]) + " at step " + total[0][0] +
        ", " + number(total[total.length - 1][1]) + " at step " + total[total.length - 1][0]);
    }
  }

  function niceStep(raw) {
    if (raw <= 1) return 1;
    var base = Math.pow(10, Math.floor(Math.log10(raw)));
    var factors = [1, 2, 5, 10];
    for (var i = 0; i < factors.length; i++) if (base * factors[i] >= raw) return base * factors[i];
    return base * 10;
  }

  // -- polling -------------------------------------------------------------------------

  function lastStep() {
    return history.length ? history[history.length - 1].step : -1;
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (source) return; // the stream brings the changes
    timer = setTimeout(poll, ms);
  }

  // -- following the stream ------------------------------------------------------------

  function follow() {
    if (!eventsUrl || !window.EventSource) { schedule(FAST); return; }
    var heard = false;
    source = new EventSource(eventsUrl);
    source.onmessage = function (event) {
      heard = true;
      $("connection").hidden = true;
      apply(JSON.parse(event.data));
    };
    source.addEventListener("end", function () { stopFollowing(); });
    source.onerror = function () {
      // Refused (503, 401, 404) or never heard from: poll instead. A stream that worked and
      // dropped reconnects by itself (CONNECTING), resuming after the last event it had.
      if (source.readyState === EventSource.CLOSED || !heard) {
        stopFollowing();
        if (!state.finished) { delay = FAST; schedule(FAST); }
      }
    };
  }

  function stopFollowing() {
    if (source) { source.close(); source = null; }
  }

  function poll() {
    if (document.hidden) return; // visibilitychange resumes
    fetch(statusUrl + "?step=" + lastStep(), {headers: {Accept: "application/json"}, cache: "no-store",
                                              credentials: "same-origin"})
      .then(function (response) {
        if (response.redirected && /\/accounts\/login\//.test(response.url)) {
          var out = new Error("logged out");
          out.loggedOut = true;
          throw out;
        }
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (fresh) {
        $("connection").hidden = true;
        var changed = signature(fresh) !== signature(state);
        apply(fresh);
        if (fresh.finished) return; // nothing will change any more
        delay = changed ? FAST : Math.min(SLOW, Math.round(delay * 1.5));
        schedule(delay);
      })
      .catch(function (error) {
        var note = $("connection");
        note.hidden = false;
        if (error.loggedOut) { // polling again will not help
          note.textContent = "You have been logged out. Log in again to follow this job.";
          return;
        }
        note.textContent = "Connection lost — retrying…";
        delay = Math.min(OFFLINE, Math.max(FAST, delay) * 2);
        schedule(delay);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !state.finished) { delay = FAST; schedule(0); }
  });

  // -- cancel --------------------------------------------------------------------------

  $("cancel-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var button = $("cancel-button");
    button.disabled = true;
    button.textContent = "Stopping…";
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {Accept: "application/json"}})
      .then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (answer) {
        if (!answer.ok && answer.body.message) $("announcer").textContent = answer.body.message;
        if (answer.body.status) { answer.body.loss_history = null; apply(answer.body); }
        if (!state.finished) { delay = FAST; schedule(FAST); }
      })
      .catch(function () {
        button.disabled = false;
        button.textContent = "Cancel";
        $("connection").hidden = false;
      });
  });

  // -- the top patches of a unit ----------------------------------------------------------

  var layerSelect = $("patch-layer"), unitInput = $("patch-unit");
  var PATCHES_GIVE_UP_MS = 10 * 60 * 1000;

  function updateUnitRange() {
    var channels = Number(layerSelect.selectedOptions[0].dataset.channels);
    unitInput.max = channels - 1;
    $("patch-unit-max").textContent = channels - 1;
  }
  layerSelect.addEventListener("change", updateUnitRange);
  updateUnitRange();

  $("patches-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var error = $("patches-error"), button = $("patch-button");
    var query = new URLSearchParams({layer: layerSelect.value, unit: unitInput.value});
    error.hidden = true;
    button.disabled = true;
    button.textContent = "Computing…";
    // A worker computes the picture: 202 while it does, then the PNG. Ask again, less and less
    // often, for up to PATCHES_GIVE_UP_MS.
    var url = form.action + "?" + query, started = Date.now(), wait = 500;
    function ask() {
      return fetch(url, {credentials: "same-origin"}).then(function (response) {
        if (response.status === 202) {
          if (Date.now() - started > PATCHES_GIVE_UP_MS) throw new Error("The patches are taking too long; try again later.");
          return new Promise(function (resolve) { setTimeout(resolve, wait); }).then(function () {
            wait = Math.min(wait * 1.5, 5000);
            return ask();
          });
        }
        if (!response.ok) return response.text().then(function (text) { throw new Error(text); });
        return response.blob();
      });
    }
    ask()
      .then(function (blob) {
        var img = $("patches-image");
        if (img.src.indexOf("blob:") === 0) URL.revokeObjectURL(img.src);
        img.src = URL.createObjectURL(blob);
        img.alt = "The nine patches that excite unit " + unitInput.value + " of " + layerSelect.value +
          " most, in the content, the style and the result";
        $("patches-caption").textContent = layerSelect.value + ", unit " + unitInput.value;
        $("patches-figure").hidden = false;
      })
      .catch(function (e) {
        error.textContent = e.message || "Could not compute the patches.";
        error.hidden = false;
      })
      .finally(function () {
        button.disabled = false;
        button.textContent = "Show patches";
      });
  });

  // -- start ---------------------------------------------------------------------------

  apply(state);
  if (!state.finished) follow();
})();
