// Automatic logoff warning: a minute before an idle staff session ends, say so and offer to stay.
// The server keeps the clock (compliance/session_guard.py); this only reads it. Reading it is
// not activity; "Stay signed in" is. Chat frames count as activity on the server too.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var sessionUrl = script.dataset.sessionUrl;
  var loginUrl = script.dataset.loginUrl;
  var WARN_SECONDS = 60;
  var banner = null;
  var countdown = null;
  var timer = null;

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function signedOut() {
    window.location.assign(loginUrl + "?next=" + encodeURIComponent(window.location.pathname));
  }

  function showBanner(remaining) {
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "idle-warning";
      banner.className = "idle-warning";
      banner.setAttribute("role", "alertdialog");
      var text = document.createElement("p");
      text.id = "idle-warning-text";
      banner.appendChild(text);
      var stay = document.createElement("button");
      stay.type = "button";
      stay.textContent = "Stay signed in";
      stay.addEventListener("click", stayIn);
      banner.appendChild(stay);
      document.body.appendChild(banner);
    }
    var ends = Date.now() + remaining * 1000;
    function tick() {
      var left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      document.getElementById("idle-warning-text").textContent =
        "You will be signed out in " + left + " seconds because of inactivity.";
    }
    tick();
    clearInterval(countdown);
    countdown = setInterval(tick, 1000);
    banner.hidden = false;
  }

  function hideBanner() {
    clearInterval(countdown);
    if (banner) banner.hidden = true;
  }

  function handle(response) {
    if (response.status === 401) { signedOut(); return; }
    if (!response.ok) { schedule(30); return; }
    response.json().then(function (data) {
      if (data.remaining <= 0) { signedOut(); return; }
      if (data.remaining <= WARN_SECONDS) showBanner(data.remaining); else hideBanner();
      schedule(Math.min(30, Math.max(2, data.remaining - WARN_SECONDS - 5)));
    });
  }

  function check() {
    fetch(sessionUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(handle, function () { schedule(30); });
  }

  function stayIn() {
    fetch(sessionUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    }).then(handle, function () { schedule(5); });
  }

  function schedule(seconds) {
    clearTimeout(timer);
    timer = setTimeout(check, seconds * 1000);
  }

  check();
})();
