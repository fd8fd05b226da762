/* GeoShare portal: signing in with a department key (Apache-2.0). The key is checked with /whoami and
   kept in this browser's localStorage only; signing out forgets it. */
(function () {
  "use strict";
  var P = window.GSPortal;
  var t = P.t, esc = P.esc, $ = P.$;

  function showIdentity(who) {
    var section = $("identity");
    if (!who) { section.hidden = true; return; }
    var grants = Object.keys(who.grants || {}).map(function (layer) {
      var g = who.grants[layer];
      return layer + " (" + (g.fields || []).join("、") + (g.area_limited ? " · " + t("signin.area_limited") : "") + ")";
    });
    var rows = [
      ["signin.department", who.department || "—"],
      ["signin.role", P.roleName(who.role)],
      ["signin.prefix", who.key_prefix],
      ["signin.grants", grants.length ? grants.join("；") : t("signin.no_grants")]
    ];
    $("identity-meta").innerHTML = rows.map(function (r) {
      return "<dt>" + esc(t(r[0])) + "</dt><dd>" + esc(r[1]) + "</dd>";
    }).join("");
    section.hidden = false;
  }

  function safeNext() {
    var next = P.config.next;
    return next && next.charAt(0) === "/" && next.charAt(1) !== "/" ? next : null;
  }

  function signinPage() {
    var form = $("signin-form");
    var input = $("api-key");
    var status = $("signin-status");
    if (P.key()) {
      // show who this browser is signed in as, refreshed (grants change as agreements are decided)
      P.request("GET", "/whoami").then(function (who) {
        if (who && !who.anonymous) { P.signIn(P.key(), who); showIdentity(who); }
      }, function () { showIdentity(P.who()); });
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var key = input.value.trim();
      input.removeAttribute("aria-invalid");
      if (!key) {
        input.setAttribute("aria-invalid", "true");
        status.innerHTML = "<p class=\"error\">" + esc(t("signin.empty")) + "</p>";
        input.focus();
        return;
      }
      status.textContent = t("loading");
      P.request("GET", "/whoami", { key: key }).then(function (who) {
        if (!who || who.anonymous) throw Object.assign(new Error(t("signin.bad_key")), { status: 401 });
        P.signIn(key, who);
        input.value = "";
        status.innerHTML = "<p class=\"ok\">" + esc(t("signin.ok", { department: who.department || "—",
          role: P.roleName(who.role) })) + "</p>";
        showIdentity(who);
        var next = safeNext();
        if (next) window.location.assign(next);
      }).catch(function (err) {
        input.setAttribute("aria-invalid", "true");
        var reason = err.status === 401 || err.status === 403 ? t("signin.bad_key") : P.problemText(err);
        status.innerHTML = "<p class=\"error\" role=\"alert\">" + esc(reason) +
          (err.status === 401 || err.status === 403 ? " <span class=\"muted\">" + esc(err.detail || "") + "</span>" : "") +
          "</p>";
        input.focus();
      });
    });
    $("signout").addEventListener("click", function () {
      P.signOut();
      showIdentity(null);
      status.innerHTML = "<p>" + esc(t("signin.signed_out")) + "</p>";
      input.focus();
    });
  }

  P.pages.signin = signinPage;
})();
