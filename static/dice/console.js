// Small behaviours of every page, kept out of the HTML so the Content-Security-Policy needs no
// inline script:
// - a [data-back] link goes back in history when there is one;
// - a form with [data-confirm] asks before it is sent (destructive or disruptive actions);
// - refreshed parts of a page are morphed in place (htmx "morph" extension, idiomorph), and the
//   morph never takes away what the user is doing: a value being typed, an opened panel, focus;
// - <time data-relative> shows "3 min ago" (the exact time stays on hover), [data-since] counts
//   a duration up while something runs;
// - a [data-copy] button copies its value (or the text of the element it names) to the clipboard;
// - the navigation's menu button opens and closes the menu on narrow screens.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-back]");
    if (link && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // ---- confirmations ------------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target, submitter = event.submitter;
    var question = (submitter && submitter.getAttribute("data-confirm")) ||
      (form.getAttribute && form.getAttribute("data-confirm"));
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // A delete page's button stays disabled until the object's name is typed (the server checks too).
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[data-confirm-name]")) { return; }
    var button = input.form && input.form.querySelector("button[type=submit]");
    if (button) { button.disabled = input.value !== input.getAttribute("data-confirm-name"); }
  });

  // ---- morphing refreshes ---------------------------------------------------------------------
  function dirty(el) {
    if (el.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio")) {
      return el.checked !== el.defaultChecked;
    }
    if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") { return el.value !== el.defaultValue; }
    if (el.tagName === "SELECT") {
      for (var i = 0; i < el.options.length; i++) {
        if (el.options[i].selected !== el.options[i].defaultSelected) { return true; }
      }
    }
    return false;
  }

  function configureMorph() {
    if (!window.Idiomorph) { return; }
    var defaults = window.Idiomorph.defaults;
    defaults.ignoreActiveValue = true;
    defaults.callbacks.beforeNodeMorphed = function (oldNode) {
      // A field the user changed keeps its value until they send it.
      if (oldNode.nodeType === 1 && /^(INPUT|TEXTAREA|SELECT)$/.test(oldNode.tagName) && dirty(oldNode)) {
        return false;
      }
      return true;
    };
    defaults.callbacks.beforeAttributeUpdated = function (name, element) {
      // A panel stays as the user left it (open or shut).
      if (name === "open" && element.tagName === "DETAILS") { return false; }
      return true;
    };
  }

  // A live part of a page: [data-live-url] is fetched again and morphed in place when the event
  // named by data-live-event reaches the body (a push over a WebSocket), and every data-poll-ms
  // as the fallback (read after each refresh: the server says how soon to look again; 0 stops).
  function startLive(el) {
    if (el.diceLive || !window.htmx) { return; }
    el.diceLive = true;
    var busy = false, again = false, timer = null;
    function schedule() {
      clearTimeout(timer);
      if (el.dicePushed) { return; }  // a WebSocket brings the changes (run.js): no polling
      var ms = parseInt(el.getAttribute("data-poll-ms") || "0", 10);
      if (ms > 0) { timer = setTimeout(refresh, ms); }
    }
    function done() {
      busy = false;
      if (again) { again = false; refresh(); } else { schedule(); }
    }
    function refresh() {
      if (!document.body.contains(el)) { return; }
      if (busy) { again = true; return; }
      busy = true;
      clearTimeout(timer);
      window.htmx.ajax("GET", el.getAttribute("data-live-url"), { source: el, target: el, swap: "morph" }).then(done, done);
    }
    var name = el.getAttribute("data-live-event");
    if (name) { document.body.addEventListener(name, refresh); }
    el.addEventListener("dice:refresh", refresh);
    var socket = el.getAttribute("data-live-socket");
    if (socket) { follow(el, socket, refresh); }
    el.addEventListener("dice:poll", schedule);  // the push channel went down: poll again
    schedule();
  }

  // [data-live-socket]: every message on that WebSocket refreshes the region (its own pushes, e.g.
  // the cluster page's node usage), and so does each (re)connection; reconnects with a backoff
  // unless the server refused (4xxx).
  function follow(el, path, refresh) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var retry = 1000;
    function open() {
      var ws = new WebSocket(scheme + location.host + path);
      ws.onmessage = refresh;
      ws.onopen = function () { retry = 1000; refresh(); };  // catch up on what was pushed while away
      ws.onclose = function (e) {
        if (e.code < 4000 && document.body.contains(el)) { setTimeout(open, retry); retry = Math.min(retry * 2, 30000); }
      };
    }
    open();
  }

  function startLiveRegions() {
    document.querySelectorAll("[data-live-url]").forEach(startLive);
  }

  // ---- times ----------------------------------------------------------------------------------
  function relative(seconds) {
    var future = seconds < 0, s = Math.abs(seconds), text;
    if (s < 45) { text = Math.round(s) + " s"; }
    else if (s < 3600) { text = Math.round(s / 60) + " min"; }
    else if (s < 86400) { text = Math.round(s / 3600) + " h"; }
    else { text = Math.round(s / 86400) + " d"; }
    if (s < 10) { return "just now"; }
    return future ? "in " + text : text + " ago";
  }

  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + s + " s"; }
    return s + " s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      if (!el.title) { el.title = el.textContent.trim(); }
      el.textContent = relative((now - at) / 1000);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(at)) { el.textContent = duration((now - at) / 1000); }
    });
  }

  // ---- copy buttons ---------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy], button[data-copy-from]");
    if (!button) { return; }
    event.preventDefault();
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var source = document.getElementById(button.getAttribute("data-copy-from"));
      text = source ? (source.value !== undefined ? source.value : source.textContent).trim() : "";
    }
    function done() {
      var label = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      setTimeout(function () { button.textContent = label; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  });

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  // ---- narrow screens: the navigation's menu button ---------------------------------------------
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-nav-toggle]");
    if (!toggle) { return; }
    var nav = document.getElementById(toggle.getAttribute("aria-controls"));
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    if (nav) { nav.classList.toggle("open", open); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    configureMorph();
    startLiveRegions();
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSettle", tick);
})();
