// Wall-screen helpers, served from this server (nothing from the internet).
// 1. Reconnect: when the page's websocket closes (server restart, network cut), poll the
//    server and reload the page as soon as it answers again: a kiosk never needs a hand.
// 2. Rotation: ?rotate=N cycles wall -> alarms -> fleet every N seconds.
(function () {
  "use strict";
  var reloading = false;
  function waitAndReload() {
    if (reloading) { return; }
    reloading = true;
    var poll = function () {
      fetch(window.location.href, { cache: "no-store" }).then(function (r) {
        if (r.ok) { window.location.reload(); } else { setTimeout(poll, 2000); }
      }).catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 1000);
  }
  var Native = window.WebSocket;
  function Watched(url, protocols) {
    var ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("close", function () {
      if (!window.rgUnloading) { window.rgDisconnected = true; waitAndReload(); }
    });
    return ws;
  }
  Watched.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { Watched[k] = Native[k]; });
  window.WebSocket = Watched;
  window.addEventListener("beforeunload", function () { window.rgUnloading = true; });

  var params = new URLSearchParams(window.location.search);
  var rotate = parseInt(params.get("rotate") || "0", 10);
  if (rotate > 0) {
    var pages = ["", "alarms", "fleet"];
    var path = window.location.pathname;
    var base = path.replace(/(alarms|fleet|lighting)\/?$/, "");
    var here = path.slice(base.length).replace(/\/$/, "");
    var next = pages[(Math.max(pages.indexOf(here), 0) + 1) % pages.length];
    window.rgNextPage = base + next + window.location.search;
    setTimeout(function () { window.location.href = window.rgNextPage; }, rotate * 1000);
  }
})();
