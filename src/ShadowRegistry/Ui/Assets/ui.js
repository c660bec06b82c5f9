// ShadowRegistry operator page: the pages work without this; it adds live expiry countdowns and copy buttons.
"use strict";
(function () {
  function span(ms) {
    var s = Math.max(0, Math.floor(ms / 1000)), d = Math.floor(s / 86400), h = Math.floor(s / 3600), m = Math.floor(s / 60);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (d >= 1) return d + "d " + Math.floor((s % 86400) / 3600) + "h";
    if (h >= 1) return h + "h " + two(Math.floor((s % 3600) / 60)) + "m";
    if (m >= 1) return m + "m " + two(s % 60) + "s";
    return s + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-expires]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-expires")) - now;
      el.textContent = left > 0 ? "in " + span(left) : "expired";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent).then(function () { button.textContent = "Copied"; });
      });
    });
  });
})();
