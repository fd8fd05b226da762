/* GeoShare portal pages (Apache-2.0). Map pages load /sdk/geoshare.js (GeoShare + maplibregl) first;
   form pages (sign-in, publishing, sharing, usage, batch geocoding) do without it and add their own
   script, which registers its page in GSPortal.pages. */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("gs-config").textContent);
  var M = config.messages || {};
  var BASE = config.base;
  var PREFIX = config.prefix || "";
  // the department key this browser signed in with (/portal/signin checks it with /whoami)
  var KEY_STORE = "gs_key";
  var WHO_STORE = "gs_who";
  var KEY = config.key || window.localStorage.getItem(KEY_STORE) || null;
  var WHO = null;
  try { WHO = KEY ? JSON.parse(window.localStorage.getItem(WHO_STORE) || "null") : null; } catch (e) { WHO = null; }

  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function t(key, values) {
    var text = M[key] || key;
    return values ? text.replace(/\{(\w+)\}/g, function (_, k) { return values[k] != null ? values[k] : ""; }) : text;
  }

  /** A call to the service with the signed-in key in X-API-Key; resolves to the parsed JSON (or the
      Response itself with options.raw), rejects with an Error carrying the problem's status, detail,
      field and line. */
  function request(method, path, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    var key = options.key !== undefined ? options.key : KEY;
    if (key) headers["X-API-Key"] = key;
    if (config.ticket) headers["X-GeoShare-Embed"] = config.ticket;
    var body = options.form || null;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    var url = path.indexOf("http") === 0 ? path : BASE + path;
    return fetch(url, { method: method, headers: headers, body: body, credentials: "omit" }).then(function (response) {
      if (response.ok && options.raw) return response;
      return response.text().then(function (text) {
        var doc = null;
        try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = null; }
        if (!response.ok) {
          var err = new Error((doc && (doc.detail || doc.title)) || response.statusText || ("HTTP " + response.status));
          err.status = response.status;
          err.detail = err.message;
          err.field = doc && doc.field;
          err.line = doc && doc.line;
          err.problem = doc;
          throw err;
        }
        return doc;
      });
    });
  }

  function api(path) { return request("GET", path); }

  /** Fetch a file with the key in a header (never in the URL) and hand it to the browser as a download. */
  function download(path, fallbackName) {
    return request("GET", path, { raw: true }).then(function (response) {
      var disposition = response.headers.get("Content-Disposition") || "";
      var star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
      var plain = /filename="([^"]+)"/i.exec(disposition);
      var name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : fallbackName;
      return response.blob().then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = name;
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
        return name;
      });
    });
  }

  function signIn(key, who) {
    window.localStorage.setItem(KEY_STORE, key);
    window.localStorage.setItem(WHO_STORE, JSON.stringify(who));
    KEY = key;
    WHO = who;
    showAccount();
  }

  function signOut() {
    window.localStorage.removeItem(KEY_STORE);
    window.localStorage.removeItem(WHO_STORE);
    KEY = null;
    WHO = null;
    showAccount();
  }

  function roleName(role) { return M["role." + role] ? t("role." + role) : role; }

  // department names by code (layers, agreements and usage carry codes); filled once per page
  var DEPARTMENTS = {};
  var departmentsLoaded = request("GET", "/departments").then(function (doc) {
    (doc.departments || []).forEach(function (d) { DEPARTMENTS[d.code] = d.name; });
  }).catch(function () { /* codes stay codes */ });
  function departmentName(code) { return (code && DEPARTMENTS[code]) || code || ""; }

  function showAccount() {
    var link = document.getElementById("account-link");
    if (!link) return;
    link.textContent = WHO && WHO.department ? departmentName(WHO.department) + " · " + roleName(WHO.role) : t("nav.signin");
    link.title = WHO ? t("signin.signed_in_as", { key: WHO.key_prefix }) : "";
  }

  /** Shows the "sign in first" notice of a page when no key is kept; whether one is. */
  function needKey() {
    var notice = document.getElementById("signin-needed");
    if (notice) notice.hidden = !!KEY;
    return !!KEY;
  }

  /** A problem as a sentence: its line or feature number first, then the reason and the field. */
  function problemText(err) {
    var parts = [];
    if (err.line) parts.push(t("problem.line", { n: err.line }));
    parts.push(err.detail || err.message);
    if (err.field) parts.push(t("problem.field", { field: err.field }));
    return parts.join(config.lang === "zh-CN" ? "；" : "; ");
  }

  function problemHtml(err) {
    return "<div class=\"problem\" role=\"alert\"><strong>" + esc(t(err.status >= 500 ? "problem.server" : "problem.title")) +
      "</strong><p>" + esc(problemText(err)) + "</p></div>";
  }

  function $(id) { return document.getElementById(id); }

  function colon() { return config.lang === "zh-CN" ? "：" : ": "; }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  // -- currency: "3 小时前更新，每日更新" ----------------------------------------------------------------

  var PERIOD_HOURS = { realtime: 1, hourly: 1, daily: 24, weekly: 168, monthly: 744, quarterly: 2232, yearly: 8784 };

  function ago(iso) {
    var seconds = (new Date(iso).getTime() - Date.now()) / 1000;
    var units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
    var rtf = new Intl.RelativeTimeFormat(config.lang, { numeric: "auto" });
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) return rtf.format(Math.round(seconds / units[i][1]), units[i][0]);
    }
    return rtf.format(0, "minute");
  }

  function currency(updated, frequency) {
    var freq = frequency && M["freq." + frequency] ? t("freq." + frequency) : frequency || t("freq.unknown");
    var sep = config.lang === "zh-CN" ? "，" : ", ";
    var text = t("currency.updated", { ago: ago(updated) }) + sep + freq;
    var period = PERIOD_HOURS[frequency];
    var stale = period && (Date.now() - new Date(updated).getTime()) / 3600000 > period * 1.5;
    return { text: text, stale: !!stale };
  }

  function currencyHtml(updated, frequency) {
    var c = currency(updated, frequency);
    return "<span class=\"currency\">" + esc(c.text) + "</span>" +
      (c.stale ? " <span class=\"badge warn\">" + esc(t("currency.stale")) + "</span>" : "");
  }

  function classBadge(cls) {
    return "<span class=\"badge class-" + esc(cls) + "\">" + esc(M["class." + cls] ? t("class." + cls) : cls) + "</span>";
  }

  // -- copy buttons ------------------------------------------------------------------------------------

  function copyText(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = t("copied");
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.copy");
    if (!button) return;
    var source = button.getAttribute("data-copy") ? $(button.getAttribute("data-copy")) : null;
    copyText(source ? source.textContent : button.getAttribute("data-text"), button);
  });

  function showError(target, err) {
    target.innerHTML = "<p class=\"error\" role=\"alert\">" + esc(t("error.generic", { detail: err.detail || err.message })) + "</p>";
  }

  // -- pages -------------------------------------------------------------------------------------------

  function mapPage() {
    var map = GeoShare.map("map", { key: KEY, basemap: "light", hash: true, reverseGeocode: true, lang: config.lang });
    window.gsMap = map;
    var info = $("info");
    map.on("geoshare.feature", function (e) {
      var props = e.feature.properties || {};
      info.innerHTML = "<h3>" + esc(t("feature.title")) + " · " + esc(e.feature.sourceLayer) + "</h3><dl class=\"meta\">" +
        Object.keys(props).map(function (k) { return "<dt>" + esc(k) + "</dt><dd>" + esc(props[k]) + "</dd>"; }).join("") +
        "</dl>";
    });
    map.on("geoshare.reverse", function (e) {
      var r = e.answer.result;
      if (!r) { info.innerHTML = "<p>" + esc(t("reverse.nothing")) + "</p>"; return; }
      var path = [r.province, r.city, r.district, r.township, r.community].filter(function (p, i, all) {
        return p && all.indexOf(p) === i;
      });
      info.innerHTML = "<h3>" + esc(t("reverse.title")) + "</h3><p class=\"address\">" + esc(r.formatted_address) +
        "</p><p><span class=\"muted\">" + esc(t("reverse.division")) + colon() + "</span>" + path.map(esc).join(" › ") + "</p>" +
        (r.distance_m != null ? "<p class=\"muted\">" + esc(t("reverse.distance", { m: Math.round(r.distance_m) })) +
          " · " + esc(r.level) + "</p>" : "");
    });

    document.querySelectorAll("input[name=basemap]").forEach(bindBasemap);
    function bindBasemap(input) {
      input.addEventListener("change", function () { if (input.checked) map.geoshare.setBasemap(input.value); });
    }
    api("/imagery").then(function (doc) {
      var box = $("basemap-options");
      (doc.imagery || []).forEach(function (img) {
        var label = document.createElement("label");
        label.innerHTML = "<input type=\"radio\" name=\"basemap\" value=\"" + esc(img.id) + "\"> " + esc(img.title);
        box.appendChild(label);
        bindBasemap(label.querySelector("input"));
      });
    }).catch(function () { /* no imagery service: light and dark only */ });

    var list = $("layer-list");
    api("/catalog?limit=100").then(function (doc) {
      var layers = doc.layers || [];
      if (!layers.length) { list.textContent = t("map.layers_none"); return; }
      list.innerHTML = "";
      layers.forEach(function (layer) {
        var row = document.createElement("div");
        row.className = "layer-row";
        var id = "layer-" + layer.id;
        row.innerHTML = "<input type=\"checkbox\" id=\"" + esc(id) + "\" value=\"" + esc(layer.id) + "\">" +
          "<label for=\"" + esc(id) + "\"><span class=\"swatch\"></span>" + esc(layer.title) + "</label>" +
          "<a class=\"more\" href=\"" + PREFIX + "/portal/layers/" + encodeURIComponent(layer.id) + "\" title=\"" +
          esc(layer.title) + "\" aria-label=\"" + esc(t("page.layer") + " " + layer.title) + "\">ⓘ</a>";
        var box = row.querySelector("input");
        box.addEventListener("change", function () {
          if (box.checked) {
            row.querySelector(".swatch").style.background = map.geoshare.addLayer(layer.id);
          } else {
            map.geoshare.removeLayer(layer.id);
            row.querySelector(".swatch").style.background = "";
          }
        });
        list.appendChild(row);
      });
      if (!window.location.hash) fitAll(map, layers);
    }).catch(function (err) { showError(list, err); });
  }

  function fitAll(map, layers) {
    var box = null;
    layers.forEach(function (l) {
      var e = l.extent;
      if (!e) return;
      box = box ? [Math.min(box[0], e[0]), Math.min(box[1], e[1]), Math.max(box[2], e[2]), Math.max(box[3], e[3])] : e.slice(0, 4);
    });
    if (box) map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 20, duration: 0 });
  }

  function catalogPage() {
    var form = $("catalog-form");
    var params = new URLSearchParams(window.location.search);
    ["q", "department", "theme", "class"].forEach(function (name) {
      if (params.get(name)) form.elements[name].value = params.get(name);
    });
    // filter choices from everything the visitor may see
    api("/catalog?limit=100").then(function (doc) {
      var seen = { department: {}, theme: {} };
      (doc.layers || []).forEach(function (l) {
        [["department", l.department], ["theme", l.theme]].forEach(function (pair) {
          if (!pair[1] || seen[pair[0]][pair[1]]) return;
          seen[pair[0]][pair[1]] = true;
          var option = document.createElement("option");
          option.value = pair[1];
          option.textContent = pair[0] === "department" ? departmentName(pair[1]) : pair[1];
          form.elements[pair[0]].appendChild(option);
        });
      });
      ["department", "theme"].forEach(function (name) { if (params.get(name)) form.elements[name].value = params.get(name); });
    });
    var searches = 0;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      search();
    });
    function search() {
      var values = {};
      ["q", "department", "theme", "class"].forEach(function (name) { values[name] = form.elements[name].value.trim(); });
      var qs = query(values);
      window.history.replaceState(null, "", window.location.pathname + qs);
      var results = $("results");
      var ticket = ++searches;
      results.setAttribute("aria-busy", "true");
      api("/catalog" + (qs ? qs + "&" : "?") + "limit=100").then(function (doc) {
        if (ticket !== searches) return; // a newer search is under way
        results.removeAttribute("aria-busy");
        $("result-count").textContent = t("catalog.count", { n: doc.numberMatched });
        if (!doc.layers.length) { results.innerHTML = "<li class=\"empty\">" + esc(t("catalog.none")) + "</li>"; return; }
        results.innerHTML = doc.layers.map(function (l) {
          return "<li class=\"card\" data-layer=\"" + esc(l.id) + "\"><h3><a href=\"" + PREFIX + "/portal/layers/" +
            encodeURIComponent(l.id) + "\">" + esc(l.title) + "</a> <code>" + esc(l.id) + "</code></h3>" +
            "<p>" + esc(l.description || "") + "</p><p class=\"tags\">" + classBadge(l["class"]) +
            (l.theme ? " <span class=\"badge\">" + esc(l.theme) + "</span>" : "") +
            " <span class=\"badge\" title=\"" + esc(l.department) + "\">" + esc(departmentName(l.department)) +
            "</span> <span class=\"muted\">" +
            esc(t("catalog.features", { n: l.featureCount })) + "</span></p><p>" + currencyHtml(l.updated, l.updateFrequency) +
            "</p></li>";
        }).join("");
      }).catch(function (err) { results.removeAttribute("aria-busy"); showError(results, err); });
    }
    search();
  }

  function layerPage() {
    var id = config.layerId;
    var enc = encodeURIComponent(id);
    api("/collections/" + enc).then(function (doc) {
      var meta = doc["geoshare:metadata"] || {};
      document.title = doc.title + " · GeoShare";
      $("layer-title").textContent = doc.title;
      $("layer-description").textContent = doc.description || "";
      var rows = [
        ["layer.department", esc(departmentName(meta.department))],
        ["layer.theme", esc(meta.theme || "")],
        ["layer.class", classBadge(meta.sharingClass)],
        ["layer.currency", currencyHtml(meta.updated, meta.updateFrequency)],
        ["layer.version", esc(meta.version)],
        ["layer.count", esc(meta.featureCount)],
        ["layer.geometry", esc(meta.geometryType || "")],
        ["layer.keywords", (doc.keywords || []).map(esc).join("、")],
        ["layer.source", esc(meta.source || "")],
        ["layer.licence", esc(meta.licence || "")]
      ];
      $("layer-meta").innerHTML = rows.map(function (r) { return "<dt>" + esc(t(r[0])) + "</dt><dd>" + r[1] + "</dd>"; }).join("");

      var bbox = doc.extent && doc.extent.spatial && doc.extent.spatial.bbox[0];
      var center = bbox ? [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2] : [116.397, 39.909];
      var zoom = bbox ? Math.max(3, Math.min(16, Math.floor(Math.log2(360 / Math.max(bbox[2] - bbox[0], 1e-4))) + 1)) : 10;
      var preview = GeoShare.map("preview", { key: KEY, layers: [id], basemap: "light", lang: config.lang });
      window.gsPreview = preview;

      var coll = BASE + "/collections/" + enc;
      var exportUrl = BASE + "/layers/" + enc + "/export?format=";
      var endpoints = [
        ["endpoint.collection", coll],
        ["endpoint.items", coll + "/items"],
        ["endpoint.tilejson", coll + "/tiles/WebMercatorQuad/tilejson.json"],
        ["endpoint.tiles", coll + "/tiles/WebMercatorQuad/{z}/{y}/{x}"],
        ["endpoint.wmts", BASE + "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"],
        ["endpoint.versions", BASE + "/layers/" + enc + "/versions"]
      ].concat(["gpkg", "geojson", "csv", "shp"].map(function (f) {
        return ["endpoint.export_" + f, exportUrl + f, f];
      }));
      $("endpoints").innerHTML = endpoints.map(function (e) {
        return "<li><span class=\"label\">" + esc(t(e[0])) + "</span><code>" + esc(e[1]) + "</code>" +
          "<button type=\"button\" class=\"copy\" data-text=\"" + esc(e[1]) + "\">" + esc(t("copy")) + "</button>" +
          (e[2] ? "<button type=\"button\" class=\"download\" data-export=\"" + esc(e[2]) + "\">" +
            esc(t("download")) + "</button>" : "") + "</li>";
      }).join("");
      $("endpoints").addEventListener("click", function (ev) {
        var button = ev.target.closest && ev.target.closest("button[data-export]");
        if (!button) return;
        var format = button.getAttribute("data-export");
        button.disabled = true;
        $("export-status").textContent = t("loading");
        download("/layers/" + enc + "/export?format=" + format, id + "." + (format === "shp" ? "zip" : format))
          .then(function (name) { $("export-status").textContent = t("downloaded", { name: name }); },
            function (err) { $("export-status").textContent = problemText(err); })
          .then(function () { button.disabled = false; });
      });
      var who = WHO;
      if (who && (who.role === "platform_admin" || (who.department === meta.department && who.role !== "consumer"))) {
        $("publish-version").hidden = false;
      }
      var c = center.map(function (v) { return v.toFixed(5); }).join(",");
      $("embed-snippet").textContent = "<iframe src=\"" + BASE + "/embed?layers=" + id + "&center=" + c + "&zoom=" + zoom +
        "&basemap=light&key=YOUR_BROWSER_KEY\"\n        width=\"800\" height=\"500\" style=\"border:0\" title=\"" +
        doc.title + "\"></iframe>";
      $("sdk-snippet").textContent = "<div id=\"map\" style=\"height:500px\"></div>\n<script src=\"" + BASE +
        "/sdk/geoshare.js\"></script>\n<script>\n  GeoShare.map(document.getElementById(\"map\"), {\n" +
        "    key: \"YOUR_BROWSER_KEY\", layers: [\"" + id + "\"], basemap: \"light\",\n    center: [" + c + "], zoom: " +
        zoom + ",\n  });\n</script>";
    }).catch(function (err) {
      $("layer-error").hidden = false;
      if (err.status !== 404) $("layer-error").textContent = t("error.generic", { detail: err.detail || err.message });
    });

    api("/layers/" + enc + "/versions").then(function (doc) {
      var versions = doc.versions || [];
      if (!versions.length) { $("versions").innerHTML = "<li>" + esc(t("layer.versions_none")) + "</li>"; return; }
      $("versions").innerHTML = versions.map(function (v) {
        var when = new Date(v.created_at).toLocaleString(config.lang);
        return "<li value=\"" + esc(v.version) + "\"><strong>" + esc(t("layer.version_n", { n: v.version })) + "</strong> " +
          "<time datetime=\"" + esc(v.created_at) + "\">" + esc(when) + "</time> · " +
          esc(t("catalog.features", { n: v.feature_count })) + " · " +
          esc(t("layer.changes", { added: v.added, modified: v.modified, removed: v.removed })) +
          (v.note ? " · " + esc(v.note) : "") + (v.created_by ? " <span class=\"muted\">" + esc(v.created_by) + "</span>" : "") +
          "</li>";
      }).join("");
    }).catch(function () { $("versions").innerHTML = "<li>" + esc(t("layer.versions_none")) + "</li>"; });
  }

  function geocodePage() {
    var map = GeoShare.map("map", { key: KEY, basemap: "light", lang: config.lang, reverseGeocode: true });
    window.gsMap = map;
    var markers = [];
    var form = $("geocode-form");
    var input = $("address");
    var params = new URLSearchParams(window.location.search);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      run(input.value.trim());
    });
    function run(address) {
      if (!address) return;
      window.history.replaceState(null, "", window.location.pathname + query({ address: address }));
      $("geocode-status").textContent = t("loading");
      GeoShare.geocode(address, { limit: 5, key: KEY }).then(function (doc) {
        markers.forEach(function (m) { m.remove(); });
        markers = [];
        $("geocode-status").textContent = doc.message || (doc.candidates.length ? "" : t("geocode.none"));
        var bounds = new maplibregl.LngLatBounds();
        $("candidates").innerHTML = doc.candidates.map(function (c, i) {
          return "<li><button type=\"button\" class=\"candidate\" data-i=\"" + i + "\"><span class=\"address\">" +
            esc(c.formatted_address) + "</span><span class=\"muted\">" + esc(t("geocode.level")) + colon() + esc(c.level) +
            " · " + esc(t("geocode.score")) + colon() + esc(c.score.toFixed(2)) + "</span></button></li>";
        }).join("");
        doc.candidates.forEach(function (c, i) {
          var el = document.createElement("div");
          el.className = "gs-marker" + (i === 0 ? " best" : "");
          el.textContent = String(i + 1);
          el.setAttribute("title", c.formatted_address);
          var lngLat = [c.location.lon, c.location.lat];
          markers.push(new maplibregl.Marker({ element: el }).setLngLat(lngLat)
            .setPopup(new maplibregl.Popup({ offset: 16 }).setText(c.formatted_address + " · " + c.level + " · " + c.score.toFixed(2)))
            .addTo(map));
          bounds.extend(lngLat);
        });
        if (doc.candidates.length) map.fitBounds(bounds, { padding: 80, maxZoom: 16, duration: 0 });
      }).catch(function (err) { $("geocode-status").textContent = t("error.generic", { detail: err.detail || err.message }); });
    }
    $("candidates").addEventListener("click", function (e) {
      var button = e.target.closest("button.candidate");
      if (!button) return;
      var m = markers[+button.getAttribute("data-i")];
      map.jumpTo({ center: m.getLngLat(), zoom: Math.max(map.getZoom(), 16) });
      m.togglePopup();
    });
    if (params.get("address")) {
      input.value = params.get("address");
      run(input.value);
    }
  }

  function embedPage() {
    var map = GeoShare.map("map", {
      key: config.key, ticket: config.ticket, layers: config.layers, basemap: config.basemap,
      center: config.center, zoom: config.zoom, lang: config.lang
    });
    window.gsMap = map;
  }

  var pages = { map: mapPage, catalog: catalogPage, layer: layerPage, geocode: geocodePage, embed: embedPage };

  // for the page scripts that follow (deferred, so they run before DOMContentLoaded)
  window.GSPortal = {
    config: config, t: t, esc: esc, $: $, api: api, request: request, download: download, query: query,
    colon: colon, currencyHtml: currencyHtml, classBadge: classBadge, showError: showError, roleName: roleName,
    problemText: problemText, problemHtml: problemHtml, needKey: needKey, signIn: signIn, signOut: signOut,
    departmentName: departmentName, departmentsLoaded: departmentsLoaded,
    key: function () { return KEY; }, who: function () { return WHO; }, pages: pages
  };

  function start() {
    showAccount();
    var page = pages[document.body.getAttribute("data-page")];
    // names first (a moment, and cached), so pages show them from the first paint
    departmentsLoaded.then(function () { showAccount(); if (page) page(); });
  }
  // deferred scripts all run before DOMContentLoaded (readyState is already "interactive" then)
  document.addEventListener("DOMContentLoaded", start);
})();
