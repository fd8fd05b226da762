/* GeoShare portal: batch geocoding of a CSV (Apache-2.0). Upload → a job (POST /jobs/geocode), its
   progress polled from GET /jobs/{id}, then the result to download and the rows that did not match
   shown highlighted. Only the first rows of each file are read for the tables (the download is whole). */
(function () {
  "use strict";
  var P = window.GSPortal;
  var t = P.t, esc = P.esc, $ = P.$;
  var POLL_MS = 700;
  var UNMATCHED_SHOWN = 100;
  var PREVIEW_SHOWN = 20;
  var SHOWN_GS = ["gs_status", "gs_score", "gs_formatted_address", "gs_message"];
  var STATUS = { ok: "batch.matched", partial: "batch.partial", ambiguous: "batch.ambiguous",
    not_found: "batch.not_found", empty: "batch.empty" };

  /** RFC 4180 records of ``text`` (quotes, doubled quotes, CRLF); a leading BOM is dropped. */
  function parseCsv(text) {
    var rows = [], row = [], field = "", quoted = false;
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (quoted) {
        if (c === "\"") {
          if (text[i + 1] === "\"") { field += "\""; i++; } else quoted = false;
        } else field += c;
      } else if (c === "\"") quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows;
  }

  /** The header and at most ``limit`` records of a CSV the service sends, reading no further than needed. */
  function csvHead(path, limit) {
    return P.request("GET", path, { raw: true }).then(function (response) {
      var reader = response.body.getReader();
      var decoder = new TextDecoder("utf-8");
      var text = "";
      function more() {
        return reader.read().then(function (part) {
          if (!part.done) text += decoder.decode(part.value, { stream: true });
          var lines = (text.match(/\n/g) || []).length;
          if (!part.done && lines <= limit + 1) return more();
          if (!part.done) reader.cancel();
          var rows = parseCsv(text);
          if (!part.done) rows.pop(); // may be cut short
          return { header: rows[0] || [], rows: rows.slice(1, limit + 1), complete: !!part.done && rows.length - 1 <= limit };
        });
      }
      return more();
    });
  }

  function columnsOf(header) {
    var own = [];
    header.forEach(function (h, i) { if (h.indexOf("gs_") !== 0) own.push(i); });
    return own.concat(SHOWN_GS.map(function (h) { return header.indexOf(h); }).filter(function (i) { return i >= 0; }));
  }

  function table(head, flaggedOnly, caption, withLine) {
    var cols = columnsOf(head.header);
    var matchedAt = head.header.indexOf("gs_matched");
    return "<div class=\"table-wrap\"><table class=\"data" + (flaggedOnly ? " unmatched" : "") + "\"><caption>" + esc(caption) +
      "</caption><thead><tr>" + (withLine ? "<th scope=\"col\">" + esc(t("publish.line")) + "</th>" : "") +
      cols.map(function (i) {
        var h = head.header[i];
        return "<th scope=\"col\">" + esc(P.config.messages["batch.col." + h] ? t("batch.col." + h) : h) + "</th>";
      }).join("") + "</tr></thead><tbody>" + head.rows.map(function (r, n) {
        var flagged = flaggedOnly || r[matchedAt] !== "true";
        return "<tr" + (flagged ? " class=\"flagged\"" : "") + ">" + (withLine ? "<td>" + (n + 2) + "</td>" : "") +
          cols.map(function (i) {
            var gs = head.header[i].indexOf("gs_") === 0;
            var value = r[i] == null ? "" : r[i];
            if (head.header[i] === "gs_status" && STATUS[value]) value = t(STATUS[value]);
            return "<td" + (gs && flagged ? " class=\"why\"" : "") + ">" + esc(value) + "</td>";
          }).join("") + "</tr>";
      }).join("") + "</tbody></table></div>";
  }

  function countsHtml(job) {
    var c = job.counts || {};
    var rows = [["batch.rows", c.rows], ["batch.matched", c.matched], ["batch.partial", c.partial],
      ["batch.ambiguous", c.ambiguous], ["batch.not_found", c.not_found], ["batch.empty", c.empty]];
    return rows.filter(function (r) { return r[1] != null; }).map(function (r) {
      return "<dt>" + esc(t(r[0])) + "</dt><dd>" + esc(r[1]) + "</dd>";
    }).join("") + (c.rows ? "<dt>" + esc(t("batch.rate")) + "</dt><dd>" + esc((100 * c.matched / c.rows).toFixed(1) + "%") + "</dd>" : "");
  }

  function batchPage() {
    var form = $("batch-form");
    var errorBox = $("batch-error");
    var current = null;
    var timer = null;

    function follow(id) {
      current = id;
      window.history.replaceState(null, "", window.location.pathname + P.query({ job: id }));
      $("job").hidden = false;
      $("job-downloads").hidden = true;
      $("unmatched").innerHTML = "";
      $("job-counts").innerHTML = "";
      poll();
    }

    function poll() {
      clearTimeout(timer);
      var id = current;
      P.request("GET", "/jobs/" + id).then(function (job) {
        if (id !== current) return;
        var bar = $("job-progress");
        bar.value = job.progress;
        bar.setAttribute("aria-valuetext", Math.round(job.progress * 100) + "%");
        $("job").setAttribute("data-status", job.status);
        $("job-status").textContent = t("batch.status." + job.status, { done: job.processed, total: job.total || "?",
          pct: Math.round(job.progress * 100) }) + (job.error ? " — " + job.error : "");
        if (job.status === "queued" || job.status === "running") { timer = setTimeout(poll, POLL_MS); return; }
        if (job.status === "done") done(job);
      }).catch(function (err) {
        $("job-status").textContent = "";
        errorBox.innerHTML = P.problemHtml(err);
      });
    }

    function done(job) {
      $("job-counts").innerHTML = countsHtml(job);
      $("job-downloads").hidden = false;
      var box = $("unmatched");
      var unmatched = job.counts.rows - job.counts.matched;
      var parts = [];
      var preview = csvHead("/jobs/" + job.id + "/result", PREVIEW_SHOWN).then(function (head) {
        parts[0] = "<h3>" + esc(t("batch.preview", { n: head.rows.length })) + "</h3>" +
          table(head, false, t("batch.preview_caption"), true);
      });
      var flagged = unmatched ? csvHead("/jobs/" + job.id + "/unmatched", UNMATCHED_SHOWN).then(function (head) {
        parts[1] = "<h3>" + esc(t("batch.unmatched", { n: unmatched, shown: head.rows.length })) + "</h3>" +
          table(head, true, t("batch.unmatched_caption"), false);
      }) : Promise.resolve().then(function () { parts[1] = "<p class=\"ok\">" + esc(t("batch.all_matched")) + "</p>"; });
      Promise.all([preview, flagged]).then(function () {
        box.innerHTML = parts[1] + parts[0];
      }, function (err) { box.innerHTML = P.problemHtml(err); });
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      errorBox.innerHTML = "";
      form.querySelectorAll("[aria-invalid]").forEach(function (x) { x.removeAttribute("aria-invalid"); });
      var file = form.elements.file.files[0];
      if (!file) {
        form.elements.file.setAttribute("aria-invalid", "true");
        errorBox.innerHTML = P.problemHtml({ detail: t("batch.no_file") });
        form.elements.file.focus();
        return;
      }
      var data = new FormData();
      data.append("file", file, file.name);
      ["column", "city", "district", "crs"].forEach(function (name) {
        var v = form.elements[name].value.trim();
        if (v) data.append(name, v);
      });
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      P.request("POST", "/jobs/geocode", { form: data }).then(function (job) {
        follow(job.id);
      }, function (err) {
        var input = { file: "batch-file", column: "batch-column", city: "batch-city", district: "batch-district",
          crs: "batch-crs", encoding: "batch-file" }[err.field];
        if (input) $(input).setAttribute("aria-invalid", "true");
        errorBox.innerHTML = P.problemHtml(err);
      }).then(function () { button.disabled = false; });
    });

    $("download-result").addEventListener("click", function () {
      P.download("/jobs/" + current + "/result", "result.csv").catch(function (err) { errorBox.innerHTML = P.problemHtml(err); });
    });
    $("download-unmatched").addEventListener("click", function () {
      P.download("/jobs/" + current + "/unmatched", "unmatched.csv").catch(function (err) { errorBox.innerHTML = P.problemHtml(err); });
    });

    if (P.config.job) follow(P.config.job);
  }

  P.pages.batch = batchPage;
})();
