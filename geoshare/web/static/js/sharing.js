/* GeoShare portal: sharing agreements (Apache-2.0). File a request for a layer (restricted layers are
   typed in: they are not listed to those who may not see them), decide the requests addressed to
   your department, and follow your agreements to their expiry. */
(function () {
  "use strict";
  var P = window.GSPortal;
  var t = P.t, esc = P.esc, $ = P.$;
  var DAY = 86400000;

  function isoDate(d) {
    var local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 10);
  }

  function daysLeft(endsOn) {
    var end = new Date(endsOn + "T23:59:59");
    return Math.ceil((end.getTime() - Date.now()) / DAY);
  }

  function statusBadge(status) {
    return "<span class=\"badge status-" + esc(status) + "\">" + esc(t("agreement." + status)) + "</span>";
  }

  function layersText(a) {
    return a.layers.map(function (g) { return g.layer + "（" + g.fields.join("、") + "）"; }).join("；");
  }

  function expiryHtml(a) {
    if (a.status !== "approved" && a.status !== "expired") return "<span class=\"muted\">—</span>";
    var left = daysLeft(a.ends_on);
    if (left < 0) return "<span class=\"badge warn\">" + esc(t("agreements.expired_ago", { n: -left })) + "</span>";
    var text = esc(t("agreements.days_left", { n: left }));
    return left <= 30 ? "<span class=\"badge warn\">" + text + "</span>" : text;
  }

  function incomingCard(a) {
    var noteId = "note-" + a.id;
    return "<li class=\"card\" data-agreement=\"" + esc(a.id) + "\"><h3>" +
      esc(t("agreements.request_from", { consumer: a.consumer, id: a.id })) + "</h3>" +
      "<dl class=\"meta\"><dt>" + esc(t("agreements.layers")) + "</dt><dd>" + esc(layersText(a)) + "</dd>" +
      "<dt>" + esc(t("agreements.purpose")) + "</dt><dd>" + esc(a.purpose) + "</dd>" +
      "<dt>" + esc(t("agreements.period")) + "</dt><dd>" + esc(a.starts_on + " – " + a.ends_on) + "</dd>" +
      (a.area_name ? "<dt>" + esc(t("agreements.area")) + "</dt><dd>" + esc(a.area_name) + "</dd>" : "") +
      "<dt>" + esc(t("agreements.requested_by")) + "</dt><dd>" + esc((a.requested_by || "") + " · " +
        new Date(a.requested_at).toLocaleString(P.config.lang)) + "</dd></dl>" +
      "<div class=\"field\"><label for=\"" + noteId + "\">" + esc(t("agreements.note")) + "</label>" +
      "<input id=\"" + noteId + "\" type=\"text\" maxlength=\"500\"></div>" +
      "<div class=\"actions\"><button type=\"button\" data-decide=\"approve\">" + esc(t("agreements.approve")) +
      "</button><button type=\"button\" class=\"danger\" data-decide=\"reject\">" + esc(t("agreements.reject")) +
      "</button></div></li>";
  }

  function mineRow(a, me) {
    var provider = a.provider === me;
    var other = provider ? t("agreements.to", { dept: a.consumer }) : t("agreements.from", { dept: a.provider });
    var canRevoke = a.status === "approved" || a.status === "requested";
    return "<tr data-agreement=\"" + esc(a.id) + "\" class=\"status-" + esc(a.status) + "\"><td>" + esc(a.id) + "</td><td>" +
      esc(other) + "</td><td>" + esc(layersText(a)) + (a.area_name ? "<br><span class=\"muted\">" +
      esc(a.area_name) + "</span>" : "") + "</td><td>" + statusBadge(a.status) + "</td><td>" +
      esc(a.starts_on + " – " + a.ends_on) + "</td><td>" + expiryHtml(a) + "</td><td>" +
      (canRevoke ? "<button type=\"button\" class=\"secondary\" data-decide=\"revoke\">" +
        esc(t(a.status === "requested" && !provider ? "agreements.withdraw" : "agreements.revoke")) + "</button>" : "") +
      "</td></tr>";
  }

  function agreementsPage() {
    var signedIn = P.needKey();
    var who = P.who() || {};
    var form = $("request-form");
    var status = $("request-status");
    var today = new Date();
    form.elements.starts_on.value = isoDate(today);
    form.elements.ends_on.value = isoDate(new Date(today.getTime() + 365 * DAY));

    // suggestions: the departments of the layers this key can see
    P.api("/catalog?limit=100").then(function (doc) {
      var seen = {};
      $("departments").innerHTML = (doc.layers || []).map(function (l) { return l.department; })
        .filter(function (d) { if (!d || seen[d] || d === who.department) return false; seen[d] = true; return true; })
        .map(function (d) { return "<option value=\"" + esc(d) + "\">"; }).join("");
    }).catch(function () { /* suggestions only */ });

    // a layer the requester can already see (e.g. shared with some fields restricted): fill in its owner
    function lookUp() {
      var id = form.elements.layer.value.trim();
      if (!id) return;
      form.setAttribute("data-lookup", "pending");
      P.api("/collections/" + encodeURIComponent(id)).then(function (doc) {
        var meta = doc["geoshare:metadata"] || {};
        if (meta.department && !form.elements.provider.value) form.elements.provider.value = meta.department;
      }).catch(function () { /* restricted or unknown: the requester names the provider */ })
        .then(function () { form.setAttribute("data-lookup", "done"); });
    }
    form.elements.layer.addEventListener("change", lookUp);
    if (form.elements.layer.value) lookUp();

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      var v = function (name) { return form.elements[name].value.trim(); };
      var empty = ["layer", "provider", "fields", "purpose", "starts_on", "ends_on"].filter(function (n) { return !v(n); });
      if (empty.length) {
        form.elements[empty[0]].setAttribute("aria-invalid", "true");
        status.innerHTML = P.problemHtml({ detail: t("agreements.required") });
        form.elements[empty[0]].focus();
        return;
      }
      var body = {
        provider: v("provider"),
        layers: [{ layer: v("layer"), fields: v("fields").split(/[,，、;；]/).map(function (f) { return f.trim(); }).filter(Boolean) }],
        purpose: v("purpose"),
        starts_on: v("starts_on"),
        ends_on: v("ends_on")
      };
      if (v("area_code")) body.area_code = v("area_code");
      if (v("update_frequency")) body.update_frequency = v("update_frequency");
      P.request("POST", "/agreements", { json: body }).then(function (a) {
        status.innerHTML = "<p class=\"ok\">" + esc(t("agreements.filed", { id: a.id, provider: a.provider })) + "</p>";
        status.focus();
        load();
      }, function (err) {
        var name = { "layers[0].layer": "layer", "layers[0].fields": "fields", layers: "layer" }[err.field] || err.field;
        if (name && form.elements[name]) form.elements[name].setAttribute("aria-invalid", "true");
        status.innerHTML = P.problemHtml(err);
        status.focus();
      });
    });

    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest("button[data-decide]");
      if (!button) return;
      var holder = button.closest("[data-agreement]");
      var id = holder.getAttribute("data-agreement");
      var action = button.getAttribute("data-decide");
      var note = $("note-" + id);
      button.disabled = true;
      P.request("POST", "/agreements/" + id + "/" + action, { json: { note: note && note.value.trim() ? note.value.trim() : null } })
        .then(function (a) {
          $("incoming").setAttribute("data-last", action + ":" + a.id + ":" + a.status);
          load();
        }, function (err) {
          button.disabled = false;
          holder.insertAdjacentHTML("beforeend", P.problemHtml(err));
        });
    });

    function load() {
      if (!signedIn) return;
      var incoming = $("incoming");
      var mine = $("mine").querySelector("tbody");
      incoming.setAttribute("aria-busy", "true");
      P.request("GET", "/agreements").then(function (doc) {
        var all = doc.agreements || [];
        var me = who.department;
        var admin = who.role === "platform_admin";
        var waiting = all.filter(function (a) { return a.status === "requested" && (a.provider === me || admin); });
        incoming.innerHTML = waiting.length ? waiting.map(incomingCard).join("") :
          "<li class=\"empty muted\">" + esc(t("agreements.none_incoming")) + "</li>";
        var rest = all.filter(function (a) { return waiting.indexOf(a) < 0; });
        mine.innerHTML = rest.length ? rest.map(function (a) { return mineRow(a, me); }).join("") :
          "<tr><td colspan=\"7\" class=\"muted\">" + esc(t("agreements.none")) + "</td></tr>";
        incoming.removeAttribute("aria-busy");
      }).catch(function (err) {
        incoming.removeAttribute("aria-busy");
        incoming.innerHTML = "<li>" + P.problemHtml(err) + "</li>";
      });
    }
    load();
  }

  P.pages.agreements = agreementsPage;
})();
