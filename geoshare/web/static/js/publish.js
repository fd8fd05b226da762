/* GeoShare portal: publishing a layer (Apache-2.0). The form is first checked by a dry run
   (POST /layers?dry_run=true), which names the feature or line of any problem; only a file that
   passed, with the form unchanged since, can be published. */
(function () {
  "use strict";
  var P = window.GSPortal;
  var t = P.t, esc = P.esc, $ = P.$;

  var META_TEXT = ["title", "department", "class", "theme", "update_frequency", "description", "key_field"];
  var META_LISTS = ["keywords", "restricted_fields"];
  var OPTIONS = ["address_column", "encoding", "source_crs", "lon_column", "lat_column"];
  // the problem's field (as the API names it) → the input to point at
  var INPUTS = {
    id: "layer-id", "metadata.id": "layer-id", class: "class", sharing_class: "class",
    restricted_fields: "restricted_fields", key_field: "key_field"
  };

  function list(value) {
    return value.split(/[,，、;；]/).map(function (v) { return v.trim(); }).filter(Boolean);
  }

  function inputFor(field) {
    if (!field) return "file";
    var name = field.indexOf("metadata.") === 0 ? field.slice(9) : field;
    if (INPUTS[field]) return INPUTS[field];
    if (META_TEXT.indexOf(name) >= 0 || META_LISTS.indexOf(name) >= 0 || OPTIONS.indexOf(name) >= 0) return name;
    return "file"; // a field of the data itself (a column name, geometry): the file is what to fix
  }

  function formData(form) {
    var metadata = { id: form.elements.id.value.trim() };
    META_TEXT.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) metadata[name] = value;
    });
    META_LISTS.forEach(function (name) {
      var values = list(form.elements[name].value);
      if (values.length) metadata[name] = values;
    });
    var data = new FormData();
    var file = form.elements.file.files[0];
    if (file) data.append("file", file, file.name);
    data.append("metadata", JSON.stringify(metadata));
    OPTIONS.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) data.append(name, value);
    });
    return data;
  }

  function dl(rows) {
    return "<dl class=\"meta\">" + rows.map(function (r) {
      return "<dt>" + esc(t(r[0])) + "</dt><dd>" + r[1] + "</dd>";
    }).join("") + "</dl>";
  }

  function warningText(w) {
    if (w.code === "fields_unrestricted") return t("publish.warn_unrestricted", { fields: w.fields.join("、") });
    var name = function (v) { return v == null ? t("publish.none") : (M("class." + v) ? t("class." + v) : v); };
    return t("publish.warn_" + w.code, { from: name(w.from), to: name(w.to) });
  }

  function M(key) { return P.config.messages && P.config.messages[key]; }

  function reportHtml(r) {
    var geo = r.geocoding;
    var head = r.new_layer ? t("publish.ok_new", { id: r.id }) : t("publish.ok_version", { id: r.id, n: r.version });
    var rows = [
      ["publish.features", esc(r.feature_count) + (r.current ? " <span class=\"muted\">" +
        esc(t("publish.was", { n: r.current.feature_count })) + "</span>" : "")],
      ["layer.geometry", esc(r.geometry_type)],
      ["publish.crs", esc(r.source_crs)],
      ["publish.format", esc([r.source.format, r.source.encoding].filter(Boolean).join(" · "))],
      ["publish.repaired", r.repaired ? esc(t("publish.repaired_list", { n: r.repaired,
        list: r.repaired_features.join("、") })) : esc(t("publish.none"))]
    ];
    if (geo) {
      rows.push(["publish.match_rate", esc(t("publish.match", { matched: geo.matched, rows: geo.rows,
        rate: (geo.match_rate * 100).toFixed(1) }))]);
    }
    var html = "<div class=\"result ok\"><h2 id=\"report-title\">" + esc(head) + "</h2>";
    if (r.warnings && r.warnings.length) {
      html += "<ul class=\"warnings\">" + r.warnings.map(function (w) {
        return "<li class=\"badge warn\">" + esc(warningText(w)) + "</li>";
      }).join("") + "</ul>";
    }
    html += dl(rows);
    html += "<h3>" + esc(t("publish.fields")) + "</h3><table class=\"data\"><thead><tr><th scope=\"col\">" +
      esc(t("publish.field_name")) + "</th><th scope=\"col\">" + esc(t("publish.field_type")) + "</th></tr></thead><tbody>" +
      r.fields.map(function (f) {
        return "<tr><td>" + esc(f.name) + "</td><td>" + esc(M("type." + f.type) ? t("type." + f.type) : f.type) + "</td></tr>";
      }).join("") + "</tbody></table>";
    if (geo && geo.unmatched_rows.length) {
      html += "<h3>" + esc(t("publish.unmatched", { n: geo.unmatched })) + "</h3><p class=\"hint\">" +
        esc(t("publish.unmatched_hint")) + "</p><table class=\"data unmatched\"><thead><tr>" +
        ["publish.line", "publish.address", "publish.reason", "publish.best"].map(function (k) {
          return "<th scope=\"col\">" + esc(t(k)) + "</th>";
        }).join("") + "</tr></thead><tbody>" + geo.unmatched_rows.map(function (u) {
          return "<tr class=\"flagged\"><td>" + esc(u.line) + "</td><td>" + esc(u.address || "") + "</td><td>" +
            esc(u.message || u.status) + "</td><td>" + esc(u.best ? u.best + " (" + u.score + ")" : "") + "</td></tr>";
        }).join("") + "</tbody></table>";
    }
    return html + "</div>";
  }

  function publishPage() {
    var form = $("publish-form");
    var report = $("report");
    var publishButton = $("publish");
    var checked = false; // the form as it is now passed a dry run
    P.needKey();
    var who = P.who();
    if (who && who.department && !form.elements.department.value) form.elements.department.value = who.department;

    if (P.config.layerId) prefill(form, P.config.layerId);

    function stale() {
      if (!checked) return;
      checked = false;
      publishButton.disabled = true;
    }
    form.addEventListener("input", stale);
    form.addEventListener("change", stale);

    function clearMarks() {
      form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    }

    function showProblem(err) {
      var input = $(inputFor(err.field));
      if (input) {
        input.setAttribute("aria-invalid", "true");
        var details = input.closest("details");
        if (details) details.open = true;
      }
      report.innerHTML = P.problemHtml(err);
      report.focus();
    }

    function missing() {
      var need = [["file", "publish.file"], ["layer-id", "publish.id"], ["title", "publish.title"],
        ["department", "publish.department"]];
      for (var i = 0; i < need.length; i++) {
        var el = $(need[i][0]);
        var empty = el.type === "file" ? !el.files.length : !el.value.trim();
        if (empty) return { el: el, label: t(need[i][1]) };
      }
      return null;
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      clearMarks();
      var gap = missing();
      if (gap) {
        gap.el.setAttribute("aria-invalid", "true");
        report.innerHTML = P.problemHtml({ detail: t("publish.required", { field: gap.label }) });
        gap.el.focus();
        return;
      }
      report.innerHTML = "<p class=\"muted\">" + esc(t("publish.checking")) + "</p>";
      $("check").disabled = true;
      P.request("POST", "/layers?dry_run=true", { form: formData(form) }).then(function (r) {
        report.innerHTML = reportHtml(r);
        checked = true;
        publishButton.disabled = false;
        publishButton.focus();
      }, showProblem).then(function () { $("check").disabled = false; });
    });

    publishButton.addEventListener("click", function () {
      if (!checked) return;
      publishButton.disabled = true;
      report.innerHTML = "<p class=\"muted\">" + esc(t("publish.publishing")) + "</p>";
      P.request("POST", "/layers", { form: formData(form) }).then(function (r) {
        checked = false;
        var href = P.config.prefix + "/portal/layers/" + encodeURIComponent(r.id);
        report.innerHTML = "<div class=\"result ok\" id=\"published\" data-version=\"" + esc(r.version) + "\"><h2>" +
          esc(t("publish.done", { id: r.id, n: r.version })) + "</h2><p>" +
          esc(t("publish.done_counts", { features: r.feature_count, added: r.added, modified: r.modified,
            removed: r.removed })) + "</p><p><a href=\"" + esc(href) + "\">" + esc(t("publish.view")) + "</a></p></div>";
        report.focus();
      }, function (err) {
        publishButton.disabled = false;
        showProblem(err);
      });
    });
  }

  /** A new version of an existing layer: its metadata as the catalog shows it. */
  function prefill(form, id) {
    P.api("/collections/" + encodeURIComponent(id)).then(function (doc) {
      var meta = doc["geoshare:metadata"] || {};
      var values = {
        title: doc.title, department: meta.department, class: meta.sharingClass, theme: meta.theme,
        update_frequency: meta.updateFrequency, description: doc.description, key_field: meta.keyField,
        keywords: (doc.keywords || []).join(", ")
      };
      Object.keys(values).forEach(function (name) {
        if (values[name] != null && values[name] !== "") form.elements[name].value = values[name];
      });
    }).catch(function () { /* a new id, or not readable: the publisher fills the form */ });
  }

  P.pages.publish = publishPage;
})();
