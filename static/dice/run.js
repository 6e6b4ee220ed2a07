// The run page, updated in place from the run's WebSocket (/ws/runs/<id>/, apps/pipelines/consumers.py):
// a push names the tasks that moved; after a short pause that gathers a burst (a wide stage moves
// 100 tasks at once), the page fetches the head, the graph and only those rows (?rows=a,b,...) and
// replaces them where they are. Nothing else of a 1,000-task table is fetched or touched. When
// the socket opens (or reopens) the whole body is fetched once, to catch up on what was missed;
// while it is down, the body polls as before (console.js, data-poll-ms).
(function () {
  "use strict";
  var GATHER_MS = 150;

  function start() {
    var body = document.getElementById("run-body");
    if (!body || !body.getAttribute("data-run-socket") || !window.WebSocket) { return; }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var pending = {}, headChanged = false, timer = null, busy = false, retry = 1000;

    function replaceRows(html) {
      var doc = new DOMParser().parseFromString("<!doctype html><body>" + html, "text/html");
      ["run-head", "run-dag"].forEach(function (id) {
        var fresh = doc.getElementById(id), old = document.getElementById(id);
        if (fresh && old) {
          if (window.Idiomorph) { window.Idiomorph.morph(old, fresh); } else { old.replaceWith(fresh); }
        }
      });
      doc.querySelectorAll("tr[id^='task-']").forEach(function (row) {
        var old = document.getElementById(row.id);
        if (!old) { return; }
        if (window.Idiomorph) { window.Idiomorph.morph(old, row); } else { old.replaceWith(row); }
      });
      document.body.dispatchEvent(new Event("dice:run-rows-updated", { bubbles: true }));
    }

    function flush() {
      timer = null;
      if (busy) { timer = setTimeout(flush, GATHER_MS); return; }
      var aliases = Object.keys(pending);
      if (!aliases.length && !headChanged) { return; }
      pending = {}; headChanged = false; busy = true;
      var url = body.getAttribute("data-rows-url") + "?rows=" + aliases.map(encodeURIComponent).join(",");
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(replaceRows)
        .catch(function () { body.dispatchEvent(new Event("dice:refresh")); })
        .then(function () { busy = false; });
    }

    function open() {
      var ws = new WebSocket(scheme + location.host + body.getAttribute("data-run-socket"));
      ws.onopen = function () {
        retry = 1000;
        body.dicePushed = true;
        body.dispatchEvent(new Event("dice:refresh"));  // what happened before the socket listened
      };
      ws.onmessage = function (event) {
        var msg;
        try { msg = JSON.parse(event.data); } catch (e) { return; }
        if (msg.type === "tasks") {
          (msg.tasks || []).forEach(function (t) { pending[t[0]] = t[1]; });
        }
        headChanged = true;  // the run's status, duration and actions follow its tasks
        if (msg.type === "changed" && msg.status && ["success", "failed", "cancelled", "timed-out"].indexOf(msg.status) >= 0) {
          body.dispatchEvent(new Event("dice:refresh"));  // finished: the whole body once more
          return;
        }
        if (!timer) { timer = setTimeout(flush, GATHER_MS); }
      };
      ws.onclose = function (e) {
        body.dicePushed = false;
        body.dispatchEvent(new Event("dice:poll"));
        if (e.code < 4000 && document.body.contains(body) && body.getAttribute("data-run-socket")) {
          setTimeout(open, retry);
          retry = Math.min(retry * 2, 30000);
        }
      };
    }
    open();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
