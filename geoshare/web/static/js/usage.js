/* GeoShare portal: usage charts (Apache-2.0). One /usage call grouped by day, department and layer;
   the three views (per day by department, per day by layer, top consumers of each layer) are sums
   of it, drawn as plain SVG with a data table beside each chart for screen readers. */
(function () {
  "use strict";
  var P = window.GSPortal;
  var t = P.t, esc = P.esc, $ = P.$;
  var SVG = "http://www.w3.org/2000/svg";
  // distinguishable on white, and dark enough for the white 1px gaps between segments
  var COLOURS = ["#0b5cad", "#c23b22", "#2e7d32", "#8a4b00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037"];
  var OTHERS = "\u0000others";
  var SERIES_SHOWN = 7;
  var TOP_LAYERS = 12;
  var TOP_CONSUMERS = 5;

  function days(from, to) {
    var out = [];
    var d = new Date(from + "T00:00:00Z");
    var end = new Date(to + "T00:00:00Z");
    while (d <= end && out.length < 3700) {
      out.push(d.toISOString().slice(0, 10));
      d = new Date(d.getTime() + 86400000);
    }
    return out;
  }

  function add(table, a, b, n) {
    table[a] = table[a] || {};
    table[a][b] = (table[a][b] || 0) + n;
  }

  function niceStep(max, ticks) {
    var raw = Math.max(max, 1) / ticks;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).filter(function (s) { return s >= raw; })[0];
    return Math.max(1, step);
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }

  /** Stacked bars: one per day, a segment per series (the biggest ones; the rest as "others"). */
  function stackedChart(target, dayList, table, label, title) {
    var totals = {};
    dayList.forEach(function (d) {
      Object.keys(table[d] || {}).forEach(function (s) { totals[s] = (totals[s] || 0) + table[d][s]; });
    });
    var ranked = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a]; });
    var shown = ranked.slice(0, ranked.length > SERIES_SHOWN + 1 ? SERIES_SHOWN : ranked.length);
    var series = shown.concat(ranked.length > shown.length ? [OTHERS] : []);
    var stacks = dayList.map(function (d) {
      var row = table[d] || {};
      var values = {};
      Object.keys(row).forEach(function (s) {
        var key = shown.indexOf(s) >= 0 ? s : OTHERS;
        values[key] = (values[key] || 0) + row[s];
      });
      return values;
    });
    var max = Math.max.apply(null, stacks.map(function (v) {
      return Object.keys(v).reduce(function (sum, k) { return sum + v[k]; }, 0);
    }).concat([0]));
    target.innerHTML = "";
    if (!ranked.length) {
      target.innerHTML = "<p class=\"muted\">" + esc(t("usage.none")) + "</p>";
      return;
    }
    var W = 900, H = 260, left = 52, right = 10, top = 12, bottom = 34;
    var plotW = W - left - right, plotH = H - top - bottom;
    var step = niceStep(max, 4);
    var yMax = Math.ceil(max / step) * step || step;
    var name = function (s) { return s === OTHERS ? t("usage.others") : label(s); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: "stacked",
      "aria-label": title + t("usage.chart_summary", { days: dayList.length, series: ranked.length, max: max }) });
    for (var y = 0; y <= yMax; y += step) {
      var py = top + plotH - (y / yMax) * plotH;
      svg.appendChild(el("line", { x1: left, x2: W - right, y1: py, y2: py, class: "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: py + 4, "text-anchor": "end", class: "tick" }, y.toLocaleString(P.config.lang)));
    }
    var slot = plotW / dayList.length;
    var barW = Math.max(1, Math.min(28, slot * 0.72));
    var every = Math.ceil(dayList.length / 10);
    dayList.forEach(function (d, i) {
      var x = left + i * slot + (slot - barW) / 2;
      var base = top + plotH;
      series.forEach(function (s, k) {
        var n = stacks[i][s] || 0;
        if (!n) return;
        var h = (n / yMax) * plotH;
        base -= h;
        var rect = el("rect", { x: x, y: base, width: barW, height: Math.max(h, 0.5), fill: COLOURS[k % COLOURS.length],
          "data-series": s === OTHERS ? "" : s, "data-day": d });
        rect.appendChild(el("title", {}, d + " · " + name(s) + colonSep() + n.toLocaleString(P.config.lang)));
        svg.appendChild(rect);
      });
      if (i % every === 0) {
        svg.appendChild(el("text", { x: x + barW / 2, y: H - bottom + 16, "text-anchor": "middle", class: "tick" }, d.slice(5)));
      }
    });
    svg.appendChild(el("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "axis" }));
    target.appendChild(svg);

    var legend = document.createElement("ul");
    legend.className = "legend";
    legend.innerHTML = series.map(function (s, k) {
      var total = s === OTHERS ? ranked.slice(shown.length).reduce(function (sum, r) { return sum + totals[r]; }, 0) : totals[s];
      return "<li><span class=\"swatch\" style=\"background:" + COLOURS[k % COLOURS.length] + "\"></span>" +
        esc(name(s)) + " <span class=\"muted\">" + esc(total.toLocaleString(P.config.lang)) + "</span></li>";
    }).join("");
    target.appendChild(legend);

    var details = document.createElement("details");
    details.innerHTML = "<summary>" + esc(t("usage.table")) + "</summary><div class=\"table-wrap\"><table class=\"data\"><thead><tr><th scope=\"col\">" +
      esc(t("usage.day")) + "</th>" + series.map(function (s) { return "<th scope=\"col\">" + esc(name(s)) + "</th>"; }).join("") +
      "</tr></thead><tbody>" + dayList.map(function (d, i) {
        return "<tr><th scope=\"row\">" + esc(d) + "</th>" + series.map(function (s) {
          return "<td>" + esc(stacks[i][s] || 0) + "</td>";
        }).join("") + "</tr>";
      }).join("") + "</tbody></table></div>";
    target.appendChild(details);
  }

  function colonSep() { return P.config.lang === "zh-CN" ? "：" : ": "; }

  function topConsumers(target, byLayer, departmentName) {
    var layers = Object.keys(byLayer).map(function (layer) {
      var depts = byLayer[layer];
      var total = Object.keys(depts).reduce(function (s, d) { return s + depts[d]; }, 0);
      return { layer: layer, total: total, depts: depts };
    }).sort(function (a, b) { return b.total - a.total; }).slice(0, TOP_LAYERS);
    if (!layers.length) {
      target.innerHTML = "<p class=\"muted\">" + esc(t("usage.none")) + "</p>";
      return;
    }
    target.innerHTML = layers.map(function (l) {
      var ranked = Object.keys(l.depts).sort(function (a, b) { return l.depts[b] - l.depts[a]; }).slice(0, TOP_CONSUMERS);
      var max = l.depts[ranked[0]] || 1;
      return "<section class=\"card top\" data-layer=\"" + esc(l.layer) + "\"><h3><a href=\"" + P.config.prefix + "/portal/layers/" +
        encodeURIComponent(l.layer) + "\">" + esc(l.layer) + "</a> <span class=\"muted\">" +
        esc(t("usage.calls", { n: l.total.toLocaleString(P.config.lang) })) + "</span></h3><ol class=\"bars\">" +
        ranked.map(function (d) {
          var n = l.depts[d];
          return "<li data-department=\"" + esc(d) + "\"><span class=\"name\">" + esc(departmentName(d)) + "</span>" +
            "<span class=\"bar\"><span style=\"width:" + (100 * n / max).toFixed(1) + "%\"></span></span>" +
            "<span class=\"n\">" + esc(n.toLocaleString(P.config.lang)) + "</span></li>";
        }).join("") + "</ol></section>";
    }).join("");
  }

  function usagePage() {
    var signedIn = P.needKey();
    var form = $("usage-form");
    var params = new URLSearchParams(window.location.search);
    var names = { from: "from", to: "to", layer: "usage-layer", department: "usage-department" };
    Object.keys(names).forEach(function (k) { if (params.get(k)) $(names[k]).value = params.get(k); });
    var departmentName = function (d) { return d === "anonymous" ? t("usage.anonymous") : P.departmentName(d); };
    var layerName = function (l) { return l === "-" ? t("usage.no_layer") : l; };

    function values() {
      var v = {};
      Object.keys(names).forEach(function (k) { v[k] = $(names[k]).value.trim(); });
      return v;
    }

    function load() {
      var v = values();
      var qs = P.query(v);
      window.history.replaceState(null, "", window.location.pathname + qs);
      if (!signedIn) return;
      $("usage-status").textContent = t("loading");
      P.request("GET", "/usage" + P.query(Object.assign({ group: "day,department,layer" }, v))).then(function (doc) {
        var byDept = {}, byLayerDay = {}, byLayer = {};
        doc.rows.forEach(function (r) {
          var dept = r.department || "anonymous";
          add(byDept, r.day, dept, r.calls);
          add(byLayerDay, r.day, r.layer || "-", r.calls);
          if (r.layer) add(byLayer, r.layer, dept, r.calls);
        });
        var dayList = days(doc.from, doc.to);
        if (!$("from").value) $("from").value = doc.from; // show the default period the service chose
        if (!$("to").value) $("to").value = doc.to;
        $("usage-status").textContent = t("usage.period", { from: doc.from, to: doc.to, scope: doc.scope === "all" ?
          t("usage.scope_all") : doc.scope });
        var tot = doc.totals;
        $("usage-totals").innerHTML = [["usage.total_calls", tot.calls], ["usage.total_items", tot.items],
          ["usage.total_errors", tot.errors], ["usage.total_limited", tot.limited],
          ["usage.avg_ms", tot.avg_ms == null ? "—" : tot.avg_ms]].map(function (p) {
          return "<div class=\"total\"><span class=\"muted\">" + esc(t(p[0])) + "</span><strong>" +
            esc(typeof p[1] === "number" ? p[1].toLocaleString(P.config.lang) : p[1]) + "</strong></div>";
        }).join("");
        stackedChart($("by-department"), dayList, byDept, departmentName, t("usage.by_department"));
        stackedChart($("by-layer"), dayList, byLayerDay, layerName, t("usage.by_layer"));
        topConsumers($("top-consumers"), byLayer, departmentName);
        document.body.setAttribute("data-usage-rows", String(doc.rows.length));
      }, function (err) {
        $("usage-status").innerHTML = P.problemHtml(err);
        var input = { from: "from", to: "to", layer: "usage-layer", department: "usage-department" }[err.field];
        if (input) $(input).setAttribute("aria-invalid", "true");
      });
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      form.querySelectorAll("[aria-invalid]").forEach(function (x) { x.removeAttribute("aria-invalid"); });
      load();
    });
    $("usage-csv").addEventListener("click", function () {
      P.download("/usage" + P.query(Object.assign({ group: "day,department,layer", f: "csv" }, values())), "usage.csv")
        .catch(function (err) { $("usage-status").innerHTML = P.problemHtml(err); });
    });
    load();
  }

  P.pages.usage = usagePage;
})();
