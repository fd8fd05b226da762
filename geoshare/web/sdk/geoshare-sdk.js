/*
 * GeoShare JavaScript SDK __GEOSHARE_VERSION__ (Apache-2.0).
 * Served at /sdk/geoshare.js right after MapLibre GL JS (BSD-3-Clause, see /static/vendor/), so one
 * script tag gives both `maplibregl` and `GeoShare`:
 *   GeoShare.map(element, {key, layers, basemap, center, zoom, fadeDuration})  -> maplibregl.Map
 *   GeoShare.geocode(address)                                     -> Promise of the /geocode answer
 *   GeoShare.suggest(q, {near: [lon, lat]})                      -> Promise of the /suggest answer
 *   GeoShare.reverse(lon, lat)                                    -> Promise of the /geocode/reverse answer
 */
(function (global) {
  "use strict";

  var maplibregl = global.maplibregl;
  var current = document.currentScript;
  var BASE = current && current.src
    ? current.src.replace(/\/sdk\/geoshare\.js(\?.*)?$/, "")
    : global.location.origin;
  var TMS = "WebMercatorQuad";
  var FONT = ["Noto Sans Regular"];
  // CJK labels are drawn with the reader's own fonts; the list only says which to prefer
  var CJK_FONTS = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", ' +
    '"Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif';
  var PALETTE = ["#c23b22", "#1f6fb2", "#2e8b3a", "#d9730d", "#6a3d9a", "#8c564b", "#c2185b", "#00796b"];
  var TEXT = {
    "zh-CN": {
      attributes: "要素属性",
      refused: "地图无法显示",
      forbidden: "此密钥不允许在当前网站使用，或无权访问该数据。",
      unauthenticated: "密钥无效、已过期或已被吊销。",
      failed: "地图数据加载失败。",
      here: "该位置",
      distance: "距离约 {m} 米",
      nothing: "该位置不在任何行政区划内。"
    },
    en: {
      attributes: "Attributes",
      refused: "The map cannot be shown",
      forbidden: "This key may not be used on this site, or may not read this data.",
      unauthenticated: "The key is invalid, expired or revoked.",
      failed: "The map data could not be loaded.",
      here: "Here",
      distance: "about {m} m away",
      nothing: "This point lies in no division."
    }
  };
  var PALETTES = {
    light: { background: "#f4f3ef", line: "#9e7fa8", building: "#dedbd3", road: "#ffffff", major: "#f6c86b",
      casing: "#c7bfae", text: "#333333", halo: "#ffffff" },
    dark: { background: "#1d2330", line: "#8a74a8", building: "#2c3444", road: "#4a5468", major: "#b0864a",
      casing: "#161b24", text: "#e6e6e6", halo: "#111111" }
  };

  function GeoShareError(status, detail, url) {
    this.name = "GeoShareError";
    this.status = status;
    this.detail = detail;
    this.url = url;
    this.message = "HTTP " + status + ": " + detail;
  }
  GeoShareError.prototype = Object.create(Error.prototype);

  function fmt(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) { return values[k] != null ? values[k] : ""; });
  }

  function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function ownUrl(url) {
    return url.indexOf(BASE + "/") === 0;
  }

  /** The URL with ?key= added when it is one of ours and has none yet. */
  function withKey(url, key) {
    if (!key || !ownUrl(url) || /[?&]key=/.test(url)) return url;
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(key);
  }

  function getJSON(path, options) {
    options = options || {};
    var url = withKey(path.indexOf("http") === 0 ? path : BASE + path, options.key);
    var headers = { Accept: "application/json" };
    if (options.ticket) headers["X-GeoShare-Embed"] = options.ticket;
    return fetch(url, { headers: headers, credentials: "omit" }).then(function (response) {
      return response.text().then(function (body) {
        var doc = null;
        try { doc = body ? JSON.parse(body) : null; } catch (e) { doc = null; }
        if (!response.ok) {
          throw new GeoShareError(response.status, (doc && (doc.detail || doc.title)) || response.statusText, url);
        }
        return doc;
      });
    });
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== "") parts.push(k + "=" + encodeURIComponent(params[k]));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  var defaults = { key: null };

  function geocode(address, options) {
    options = options || {};
    return getJSON("/geocode" + query({ address: address, limit: options.limit, city: options.city,
      district: options.district, crs: options.crs }), { key: options.key || defaults.key });
  }

  function reverse(lon, lat, options) {
    options = options || {};
    return getJSON("/geocode/reverse" + query({ lon: lon, lat: lat, crs: options.crs, radius: options.radius }),
      { key: options.key || defaults.key });
  }

  function suggest(q, options) {
    // as-you-type: places, roads, compounds, divisions and addresses, nearest first when near=[lon, lat]
    options = options || {};
    var near = options.near ? options.near[0] + "," + options.near[1] : null;
    return getJSON("/suggest" + query({ q: q, near: near, limit: options.limit, crs: options.crs }),
      { key: options.key || defaults.key });
  }

  // -- styles -------------------------------------------------------------------------------------------

  function tilejsonUrl(layerId) {
    return BASE + "/collections/" + encodeURIComponent(layerId) + "/tiles/" + TMS + "/tilejson.json";
  }

  /** The base map built from the OGC tiles of the base layers, for a service without /basemap. */
  function fallbackStyle(variant) {
    var c = PALETTES[variant] || PALETTES.light;
    var roadWidth = function (major) {
      return ["interpolate", ["exponential", 1.6], ["zoom"], 9, major ? 1.2 : 0.4, 18, major ? 14 : 7];
    };
    var isMajor = ["in", ["get", "道路等级"], ["literal", ["主干路", "快速路", "高速公路"]]];
    var label = function (id, source, minzoom, line) {
      return { id: id, type: "symbol", source: source, "source-layer": source.replace("gs-", ""), minzoom: minzoom,
        layout: { "text-field": ["get", "名称"], "text-font": FONT, "text-size": line ? 12 : 14,
          "symbol-placement": line ? "line" : "point", "text-max-width": 8 },
        paint: { "text-color": c.text, "text-halo-color": c.halo, "text-halo-width": 1.4 } };
    };
    return {
      version: 8,
      glyphs: BASE + "/fonts/{fontstack}/{range}.pbf",
      sources: {
        "gs-districts": { type: "vector", url: tilejsonUrl("districts") },
        "gs-roads": { type: "vector", url: tilejsonUrl("roads") },
        "gs-buildings": { type: "vector", url: tilejsonUrl("buildings") }
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": c.background } },
        { id: "buildings", type: "fill", source: "gs-buildings", "source-layer": "buildings", minzoom: 14,
          paint: { "fill-color": c.building, "fill-outline-color": c.casing } },
        { id: "roads-casing", type: "line", source: "gs-roads", "source-layer": "roads", filter: isMajor,
          layout: { "line-cap": "round", "line-join": "round" },
          paint: { "line-color": c.casing, "line-width": roadWidth(true), "line-gap-width": 0 } },
        { id: "roads-minor", type: "line", source: "gs-roads", "source-layer": "roads", filter: ["!", isMajor],
          minzoom: 11, layout: { "line-cap": "round", "line-join": "round" },
          paint: { "line-color": c.road, "line-width": roadWidth(false) } },
        { id: "roads-major", type: "line", source: "gs-roads", "source-layer": "roads", filter: isMajor,
          layout: { "line-cap": "round", "line-join": "round" },
          paint: { "line-color": c.major, "line-width": roadWidth(true) } },
        { id: "districts", type: "line", source: "gs-districts", "source-layer": "districts",
          paint: { "line-color": c.line, "line-width": ["interpolate", ["linear"], ["zoom"], 6, 0.8, 16, 2.5],
            "line-dasharray": [3, 2] } },
        label("roads-label", "gs-roads", 13, true),
        label("districts-label", "gs-districts", 7, false)
      ]
    };
  }

  function basemapStyle(variant, auth) {
    return getJSON("/basemap/style.json" + query({ variant: variant }), auth).catch(function (err) {
      if (err.status === 404) return fallbackStyle(variant);
      throw err;
    });
  }

  function imageryStyle(imageryId, auth) {
    return Promise.all([
      getJSON("/imagery/" + encodeURIComponent(imageryId) + "/tiles/" + TMS, auth),
      basemapStyle("light", auth)
    ]).then(function (parts) {
      var tj = parts[0];
      var labels = parts[1];
      var style = JSON.parse(JSON.stringify(labels));
      // imagery underneath, the base map's lines and labels on top (影像 + 注记)
      style.sources["gs-imagery"] = { type: "raster", tiles: tj.tiles, tileSize: 256, bounds: tj.bounds,
        minzoom: tj.minzoom, maxzoom: tj.maxzoom, attribution: tj.attribution };
      style.layers = [
        { id: "background", type: "background", paint: { "background-color": "#2b2b2b" } },
        { id: "imagery", type: "raster", source: "gs-imagery" }
      ].concat(style.layers.filter(function (l) { return l.type === "line" || l.type === "symbol"; }));
      style.metadata = { "geoshare:imagery": imageryId, "geoshare:center": tj.center };
      return style;
    });
  }

  function overlayLayers(layerId, color) {
    var source = "ov-" + layerId;
    var polygon = ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon"]]];
    var point = ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]];
    return [
      { id: source + "-fill", type: "fill", source: source, "source-layer": layerId, filter: polygon,
        paint: { "fill-color": color, "fill-opacity": 0.28 } },
      { id: source + "-line", type: "line", source: source, "source-layer": layerId, filter: ["!", point],
        paint: { "line-color": color, "line-width": 1.6 } },
      { id: source + "-circle", type: "circle", source: source, "source-layer": layerId, filter: point,
        paint: { "circle-color": color, "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 2.5, 16, 6],
          "circle-stroke-color": "#ffffff", "circle-stroke-width": 1 } }
    ];
  }

  // -- the map ------------------------------------------------------------------------------------------

  function showRefusal(container, lang, err) {
    var t = TEXT[lang] || TEXT["zh-CN"];
    var old = container.querySelector(".gs-refused");
    if (old) old.remove();
    var box = document.createElement("div");
    box.className = "gs-refused";
    box.setAttribute("role", "alert");
    var reason = err.status === 401 ? t.unauthenticated : err.status === 403 ? t.forbidden : t.failed;
    box.innerHTML = "<strong>" + escapeHtml(t.refused) + "</strong><p>" + escapeHtml(reason) + "</p>" +
      (err.detail ? "<p class=\"gs-detail\">" + escapeHtml(err.detail) + "</p>" : "");
    box.style.cssText = "position:absolute;inset:0;z-index:10;display:flex;flex-direction:column;" +
      "justify-content:center;align-items:center;text-align:center;padding:1.5em;background:#fff;color:#1f2933;" +
      "font:15px/1.6 system-ui,sans-serif";
    container.appendChild(box);
    container.setAttribute("data-gs-refused", String(err.status || "error"));
  }

  function attributesHtml(feature, lang) {
    var t = TEXT[lang] || TEXT["zh-CN"];
    var rows = Object.keys(feature.properties || {}).map(function (k) {
      return "<tr><th scope=\"row\">" + escapeHtml(k) + "</th><td>" + escapeHtml(feature.properties[k]) + "</td></tr>";
    }).join("");
    var layer = feature.sourceLayer || "";
    return "<div class=\"gs-popup\"><h3>" + escapeHtml(t.attributes) + (layer ? " · " + escapeHtml(layer) : "") +
      "</h3><table>" + rows + "</table></div>";
  }

  function reverseHtml(answer, lang) {
    var t = TEXT[lang] || TEXT["zh-CN"];
    var r = answer.result;
    if (!r) return "<div class=\"gs-popup\"><p>" + escapeHtml(t.nothing) + "</p></div>";
    var path = [r.province, r.city, r.district, r.township, r.community].filter(Boolean);
    var seen = {};
    path = path.filter(function (p) { if (seen[p]) return false; seen[p] = true; return true; });
    return "<div class=\"gs-popup\"><h3>" + escapeHtml(t.here) + "</h3>" +
      "<p class=\"gs-address\">" + escapeHtml(r.formatted_address || path.join(" ")) + "</p>" +
      "<p class=\"gs-path\">" + path.map(escapeHtml).join(" › ") + "</p>" +
      (r.distance_m != null ? "<p class=\"gs-distance\">" + escapeHtml(fmt(t.distance, { m: Math.round(r.distance_m) })) +
        " · " + escapeHtml(r.level) + "</p>" : "") + "</div>";
  }

  function toList(value) {
    if (!value) return [];
    return Array.isArray(value) ? value : String(value).split(",").map(function (s) { return s.trim(); })
      .filter(Boolean);
  }

  function createMap(element, options) {
    options = options || {};
    var container = typeof element === "string" ? document.getElementById(element) : element;
    if (!container) throw new Error("GeoShare.map: no element " + element);
    if (getComputedStyle(container).position === "static") container.style.position = "relative";
    var lang = options.lang || document.documentElement.lang || "zh-CN";
    lang = lang.indexOf("en") === 0 ? "en" : "zh-CN";
    var key = options.key || defaults.key || null;
    var ticket = options.ticket || null;
    var auth = { key: key, ticket: ticket };
    var state = { basemap: options.basemap || "light", base: null, overlays: [], colors: {}, refused: false };

    var map = new maplibregl.Map({
      container: container,
      style: { version: 8, glyphs: BASE + "/fonts/{fontstack}/{range}.pbf", sources: {},
        layers: [{ id: "background", type: "background", paint: { "background-color": "#f4f3ef" } }] },
      center: options.center || [116.397, 39.909],
      zoom: options.zoom != null ? options.zoom : 10,
      hash: !!options.hash,
      localIdeographFontFamily: CJK_FONTS,
      // labels appear at once: each fade frame is a full redraw, and desktops without a GPU (virtual
      // desktops are common in government offices) draw those on the CPU; pass 300 for MapLibre's fade
      fadeDuration: options.fadeDuration != null ? options.fadeDuration : 0,
      attributionControl: { compact: true },
      transformRequest: function (url) {
        if (!ownUrl(url)) return { url: url };
        var request = { url: withKey(url, key) };
        if (ticket) request.headers = { "X-GeoShare-Embed": ticket };
        return request;
      }
    });
    if (options.controls !== false) {
      map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
      map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
    }

    function refuse(err) {
      if (state.refused) return;
      state.refused = true;
      showRefusal(container, lang, err);
      map.fire("geoshare.error", { error: err });
    }

    function compose() {
      var style = JSON.parse(JSON.stringify(state.base));
      state.overlays.forEach(function (id) {
        style.sources["ov-" + id] = { type: "vector", url: tilejsonUrl(id) };
        style.layers = style.layers.concat(overlayLayers(id, state.colors[id]));
      });
      map.setStyle(style, { diff: true });
    }

    function setBasemap(basemap) {
      var load = basemap === "light" || basemap === "dark" ? basemapStyle(basemap, auth) : imageryStyle(basemap, auth);
      return load.then(function (style) {
        state.basemap = basemap;
        state.base = style;
        compose();
        return style;
      });
    }

    function addLayer(layerId) {
      if (state.overlays.indexOf(layerId) < 0) {
        state.colors[layerId] = state.colors[layerId] || PALETTE[Object.keys(state.colors).length % PALETTE.length];
        state.overlays.push(layerId);
        if (state.base) compose();
      }
      return state.colors[layerId];
    }

    function removeLayer(layerId) {
      state.overlays = state.overlays.filter(function (id) { return id !== layerId; });
      if (state.base) compose();
    }

    function fitLayer(layerId, padding) {
      return getJSON(tilejsonUrl(layerId), auth).then(function (tj) {
        if (tj && tj.bounds) {
          map.fitBounds([[tj.bounds[0], tj.bounds[1]], [tj.bounds[2], tj.bounds[3]]],
            { padding: padding || 30, maxZoom: 16, duration: 0 });
        }
        return tj;
      });
    }

    function overlayIds() {
      var ids = [];
      state.overlays.forEach(function (id) {
        ["-fill", "-line", "-circle"].forEach(function (s) { if (map.getLayer("ov-" + id + s)) ids.push("ov-" + id + s); });
      });
      return ids;
    }

    map.on("error", function (e) {
      var status = e && e.error && e.error.status;
      if (status === 401 || status === 403) refuse({ status: status, detail: e.error.message });
    });

    if (options.popup !== false) {
      map.on("click", function (e) {
        var ids = overlayIds();
        var features = ids.length ? map.queryRenderedFeatures(e.point, { layers: ids }) : [];
        if (features.length) {
          new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(e.lngLat).setHTML(attributesHtml(features[0], lang))
            .addTo(map);
          map.fire("geoshare.feature", { feature: features[0], lngLat: e.lngLat });
        } else if (options.reverseGeocode) {
          reverse(e.lngLat.lng, e.lngLat.lat, { key: key }).then(function (answer) {
            new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(e.lngLat).setHTML(reverseHtml(answer, lang)).addTo(map);
            map.fire("geoshare.reverse", { answer: answer, lngLat: e.lngLat });
          }).catch(function (err) { map.fire("geoshare.error", { error: err }); });
        }
      });
    }

    toList(options.layers).forEach(addLayer);
    map.geoshare = {
      setBasemap: setBasemap, addLayer: addLayer, removeLayer: removeLayer, fitLayer: fitLayer,
      layers: function () { return state.overlays.slice(); },
      basemap: function () { return state.basemap; },
      overlayLayerIds: overlayIds
    };
    setBasemap(state.basemap).then(function () {
      var first = toList(options.layers)[0];
      if (!options.center && first) return fitLayer(first);
      if (!options.center && state.base.metadata && state.base.metadata["geoshare:center"]) {
        var c = state.base.metadata["geoshare:center"];
        map.jumpTo({ center: [c[0], c[1]], zoom: options.zoom != null ? options.zoom : c[2] });
      }
    }).then(function () {
      map.once("idle", function () {
        // milliseconds since navigation start: the first complete render
        container.setAttribute("data-gs-ready", String(Math.round(performance.now())));
        map.fire("geoshare.ready");
      });
    }).catch(function (err) {
      if (err && (err.status === 401 || err.status === 403)) refuse(err);
      else refuse({ status: err && err.status, detail: err && (err.detail || err.message) });
    });
    return map;
  }

  global.GeoShare = {
    version: "__GEOSHARE_VERSION__",
    base: BASE,
    maplibregl: maplibregl,
    defaults: defaults,
    map: createMap,
    geocode: geocode,
    suggest: suggest,
    reverse: reverse,
    getJSON: getJSON,
    fallbackStyle: fallbackStyle,
    escapeHtml: escapeHtml,
    Error: GeoShareError
  };
})(window);
