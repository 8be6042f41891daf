/* weir-agent dashboard: fetches /api/summary every 10 s and shows it.
 *
 * Plain JavaScript, no framework; the chart is uPlot (bundled, served
 * from assets/). Every figure shown is also put in a data-* attribute
 * (data-value, data-count, ...) so that tests read the numbers from the
 * DOM. Text from the server is only ever set with textContent. */
(function () {
  "use strict";

  var REFRESH_MS = 10000;
  var COLORS = { delivered: "#2e7d32", deferred: "#ef8f00", bounced: "#c62828" };
  var chart = null;
  var timer = null;
  var refreshes = 0;

  function $(id) {
    return document.getElementById(id);
  }

  function setFigure(id, value, text) {
    var el = $(id);
    el.dataset.value = value === null || value === undefined ? "" : String(value);
    el.textContent = text !== undefined ? text : value === null ? "–" : String(value);
  }

  function pct(x) {
    return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %";
  }

  function isoTime(ms) {
    if (!ms) return "–";
    var d = new Date(ms);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  /* fillTable - replace a table's rows: rowFn(tr, item) fills each */
  function fillTable(id, items, rowFn, emptyText) {
    var table = $(id);
    var body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    table.dataset.count = String(items.length);
    if (items.length === 0) {
      var tr = document.createElement("tr");
      var td = cell(tr, emptyText, "empty");
      td.colSpan = table.tHead.rows[0].cells.length;
      body.appendChild(tr);
      return;
    }
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      rowFn(tr, item);
      body.appendChild(tr);
    });
  }

  function sum(a) {
    return a.reduce(function (x, y) {
      return x + y;
    }, 0);
  }

  function chartWidth() {
    return Math.max(300, $("chart").clientWidth - 10);
  }

  function drawChart(s, bucket) {
    var el = $("chart");
    var data = [s.time, s.delivered, s.deferred, s.bounced];
    el.dataset.points = String(s.time.length);
    el.dataset.delivered = String(sum(s.delivered));
    el.dataset.deferred = String(sum(s.deferred));
    el.dataset.bounced = String(sum(s.bounced));
    $("bucket-note").textContent = "per " + (bucket >= 60 ? bucket / 60 + " min" : bucket + " s");
    if (chart === null) {
      var series = [{}];
      ["delivered", "deferred", "bounced"].forEach(function (name) {
        series.push({
          label: name,
          stroke: COLORS[name],
          width: 2,
          fill: COLORS[name] + "22",
          points: { show: false },
        });
      });
      chart = new uPlot(
        {
          width: chartWidth(),
          height: 260,
          series: series,
          scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
          axes: [{}, { label: "recipients" }],
        },
        data,
        el
      );
    } else {
      chart.setData(data);
    }
  }

  function showTotals(d) {
    var t = d.totals;
    setFigure("delivered-total", t.delivered);
    setFigure("deferred-total", t.deferred);
    setFigure("bounced-total", t.bounced);
    setFigure("suppressed-total", t.suppressed);
    setFigure("delivery-rate", d.delivery_rate, pct(d.delivery_rate));
  }

  function showDestinations(list) {
    fillTable("destinations", list, function (tr, x) {
      tr.dataset.domain = x.domain;
      tr.dataset.delivered = String(x.delivered);
      tr.dataset.deferred = String(x.deferred);
      tr.dataset.bounced = String(x.bounced);
      cell(tr, x.domain);
      cell(tr, x.recipients, "num");
      cell(tr, x.delivered, "num");
      cell(tr, x.deferred, "num");
      cell(tr, x.bounced, "num");
      var denom = x.delivered + x.bounced;
      cell(tr, denom > 0 ? pct(x.delivered / denom) : "–", "num");
    }, "no mail in this window");
  }

  function showUpstreams(list) {
    var down = 0;
    fillTable("upstreams", list, function (tr, x) {
      tr.dataset.host = x.host;
      tr.dataset.up = x.up ? "1" : "0";
      if (!x.up) down++;
      cell(tr, x.route);
      cell(tr, x.host);
      var st = cell(tr, x.up ? "up" : "down until " + isoTime(x.down_until), x.up ? "ok" : "bad");
      if (!x.up && x.failures) st.textContent += " (" + x.failures + " failures)";
      cell(tr, x.open, "num");
      cell(tr, x.idle, "num");
      cell(tr, x.sent, "num");
      cell(tr, x.error || "");
    }, "no upstream hosts");
    $("upstreams").dataset.down = String(down);
  }

  function showThrottle(list) {
    fillTable("throttle", list, function (tr, x) {
      tr.dataset.key = x.key;
      tr.dataset.state = x.state;
      tr.dataset.deferred = String(x.deferred);
      cell(tr, x.key);
      var st = cell(tr, x.state, x.state === "normal" ? "ok" : "bad");
      if (x.state !== "normal") {
        st.textContent += " until " + isoTime(x.until);
        if (x.rule) st.title = x.rule + (x.reply ? ": " + x.reply : "");
      }
      cell(tr, x.rate);
      cell(tr, x.observed.toFixed(1) + "/s", "num");
      cell(tr, x.sessions + "/" + (x.max_sessions > 0 ? x.max_sessions : "–"), "num");
      cell(tr, x.waiting, "num");
      cell(tr, x.deferred, "num");
    }, "no active limiter");
  }

  function showSuppression(s) {
    if (!s || !s.available) {
      ["active", "global", "hard", "soft"].forEach(function (k) {
        setFigure("suppression-" + k, null, "–");
      });
      $("suppression-active").title = s && s.error ? s.error : "";
      fillTable("suppression-scopes", [], null, s && s.error ? s.error : "not available");
      return;
    }
    setFigure("suppression-active", s.active);
    setFigure("suppression-global", s.global);
    setFigure("suppression-hard", s.hard);
    setFigure("suppression-soft", s.soft);
    fillTable("suppression-scopes", s.scopes, function (tr, x) {
      tr.dataset.scope = x.scope;
      cell(tr, x.scope);
      cell(tr, x.active, "num");
      cell(tr, x.hard, "num");
    }, "no entries");
  }

  function showBounces(list) {
    fillTable("bounces", list, function (tr, x) {
      tr.dataset.recipient = x.recipient || "";
      cell(tr, isoTime(x.time));
      cell(tr, x.recipient);
      cell(tr, x.sender || "<>");
      cell(tr, (x.code || "") + (x.status ? " " + x.status : ""));
      cell(tr, x.reason || "");
      cell(tr, x.hard ? "hard" : "soft");
      cell(tr, x.reply || "", "reply");
    }, "no bounces in the log");
  }

  function show(d) {
    showTotals(d);
    drawChart(d.series, d.bucket_seconds);
    showDestinations(d.top_destinations);
    showUpstreams(d.upstreams || []);
    showThrottle(d.throttle || []);
    showSuppression(d.suppression);
    showBounces(d.recent_bounces);
    var status = $("status");
    if (d.outcome_error) {
      status.textContent = "outcome log: " + d.outcome_error;
      status.className = "status bad";
    } else {
      status.textContent = "ok";
      status.className = "status ok";
    }
    refreshes++;
    document.body.dataset.refreshes = String(refreshes);
    document.body.dataset.state = "ready";
    var up = $("updated");
    up.dataset.time = String(d.until);
    up.textContent = "updated " + isoTime(d.until);
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(load, REFRESH_MS);
  }

  function load() {
    var since = $("since").value;
    fetch("api/summary?since=" + encodeURIComponent(since), { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(show)
      .catch(function (e) {
        document.body.dataset.state = "error";
        var status = $("status");
        status.textContent = "cannot load: " + e.message;
        status.className = "status bad";
      })
      .then(schedule);
  }

  window.addEventListener("resize", function () {
    if (chart !== null) chart.setSize({ width: chartWidth(), height: 260 });
  });
  $("since").addEventListener("change", load);
  load();
})();
