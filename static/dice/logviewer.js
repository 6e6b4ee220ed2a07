/* Dice live log viewer: plain JS, no build step. Renders [data-log-stream] panels (templates/logs/_panel.html)
   fed by /ws/logs/: ANSI colours, follow/pause, first error, search, #L<n> line links, resume after a drop. */
(function (root) {
  "use strict";

  var COLORS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
  var ERROR_RE = /error|fail|exception/i;
  var MAX_RENDER_PER_FRAME = 4000;

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function color256(n) {
    if (n < 16) { return null; }
    if (n >= 232) { var g = 8 + (n - 232) * 10; return "rgb(" + g + "," + g + "," + g + ")"; }
    n -= 16;
    var steps = [0, 95, 135, 175, 215, 255];
    return "rgb(" + steps[Math.floor(n / 36)] + "," + steps[Math.floor(n / 6) % 6] + "," + steps[n % 6] + ")";
  }

  /* SGR colour codes to spans; every other escape sequence is dropped; the text is HTML-escaped. */
  function ansiToHtml(text) {
    var out = "", state = {}, open = false;
    var re = /\x1b\[([0-9;]*)([A-Za-z])|\x1b[()][A-Za-z0-9]|\x1b./g;
    var last = 0, m;
    function classes() {
      var cls = [], style = [];
      if (state.bold) { cls.push("ansi-bold"); }
      if (state.dim) { cls.push("ansi-dim"); }
      if (state.italic) { cls.push("ansi-italic"); }
      if (state.underline) { cls.push("ansi-underline"); }
      if (state.fg) { if (state.fg.charAt(0) === "#" || state.fg.indexOf("rgb") === 0) { style.push("color:" + state.fg); } else { cls.push("ansi-" + state.fg); } }
      if (state.bg) { if (state.bg.indexOf("rgb") === 0) { style.push("background-color:" + state.bg); } else { cls.push("ansi-bg-" + state.bg); } }
      if (!cls.length && !style.length) { return ""; }
      return "<span" + (cls.length ? ' class="' + cls.join(" ") + '"' : "") + (style.length ? ' style="' + style.join(";") + '"' : "") + ">";
    }
    function emit(chunk) {
      if (!chunk) { return; }
      var tag = classes();
      out += tag ? tag + escapeHtml(chunk) + "</span>" : escapeHtml(chunk);
    }
    while ((m = re.exec(text)) !== null) {
      emit(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] !== "m") { continue; }
      var codes = m[1] === "" ? [0] : m[1].split(";").map(function (c) { return parseInt(c || "0", 10); });
      for (var i = 0; i < codes.length; i++) {
        var c = codes[i];
        if (c === 0) { state = {}; }
        else if (c === 1) { state.bold = true; }
        else if (c === 2) { state.dim = true; }
        else if (c === 3) { state.italic = true; }
        else if (c === 4) { state.underline = true; }
        else if (c === 22) { state.bold = false; state.dim = false; }
        else if (c === 23) { state.italic = false; }
        else if (c === 24) { state.underline = false; }
        else if (c >= 30 && c <= 37) { state.fg = COLORS[c - 30]; }
        else if (c >= 90 && c <= 97) { state.fg = "bright-" + COLORS[c - 90]; }
        else if (c === 39) { state.fg = null; }
        else if (c >= 40 && c <= 47) { state.bg = COLORS[c - 40]; }
        else if (c >= 100 && c <= 107) { state.bg = "bright-" + COLORS[c - 100]; }
        else if (c === 49) { state.bg = null; }
        else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
          var n = codes[i + 2] || 0, value = n < 8 ? COLORS[n] : n < 16 ? "bright-" + COLORS[n - 8] : color256(n);
          if (c === 38) { state.fg = value; } else { state.bg = value; }
          i += 2;
        } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
          var rgb = "rgb(" + (codes[i + 2] || 0) + "," + (codes[i + 3] || 0) + "," + (codes[i + 4] || 0) + ")";
          if (c === 38) { state.fg = rgb; } else { state.bg = rgb; }
          i += 4;
        }
      }
    }
    emit(text.slice(last));
    return out;
  }

  function stripAnsi(text) { return text.replace(/\x1b\[[0-9;]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b./g, ""); }

  function LogViewer(panel) {
    this.panel = panel;
    this.stream = panel.getAttribute("data-log-stream");
    this.runtime = this.stream.indexOf("runtime:") === 0;
    this.body = panel.querySelector(".log-lines");
    this.state = panel.querySelector(".log-state");
    this.eventsBox = panel.querySelector(".log-events");
    this.last = 0;            // task streams: last line number received
    this.replicas = {};       // runtime streams: replica -> last number
    this.queue = [];          // received, not yet rendered
    this.rows = [];           // rendered rows, in order
    this.following = true;
    this.complete = false;
    this.endTries = 0;
    this.hits = []; this.hit = -1;
    this.retry = 500;
    this.bind();
    this.connect();
  }

  LogViewer.prototype.q = function (sel) { return this.panel.querySelector(sel); };

  LogViewer.prototype.bind = function () {
    var self = this;
    var follow = this.q(".log-follow");
    if (follow) {
      follow.addEventListener("click", function () {
        self.following = !self.following;
        follow.textContent = self.following ? "Pause" : "Follow";
        follow.setAttribute("aria-pressed", String(!self.following));
        if (self.following) { self.schedule(); self.scrollEnd(); }
      });
    }
    var err = this.q(".log-first-error");
    if (err) { err.addEventListener("click", function () { self.firstError(); }); }
    var search = this.q(".log-search");
    if (search) {
      search.addEventListener("input", function () { self.search(search.value); });
      search.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); self.step(e.shiftKey ? -1 : 1); } });
    }
    var next = this.q(".log-next"), prev = this.q(".log-prev");
    if (next) { next.addEventListener("click", function () { self.step(1); }); }
    if (prev) { prev.addEventListener("click", function () { self.step(-1); }); }
    this.body.addEventListener("scroll", function () {
      var atEnd = self.body.scrollTop + self.body.clientHeight >= self.body.scrollHeight - 4;
      if (!atEnd && self.following && self.userScrolled) { self.following = false; if (follow) { follow.textContent = "Follow"; } }
      self.userScrolled = true;
    });
    root.addEventListener && root.addEventListener("hashchange", function () { self.gotoHash(); });
  };

  LogViewer.prototype.setState = function (text) { if (this.state) { this.state.textContent = text; } };

  LogViewer.prototype.connect = function () {
    var self = this;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = this.ws = new WebSocket(scheme + location.host + "/ws/logs/");
    this.setState("connecting…");
    ws.onopen = function () { self.retry = 500; self.subscribe(); self.setState(self.complete ? "complete" : "live"); };
    ws.onmessage = function (e) { self.receive(JSON.parse(e.data)); };
    ws.onclose = function (e) {
      if (e.code === 4401) { self.setState("sign in to see this log"); return; }
      if (e.code === 4404) { self.setState("not found"); return; }
      if (self.complete) { return; }
      self.setState("reconnecting…");
      setTimeout(function () { self.connect(); }, self.retry);
      self.retry = Math.min(self.retry * 2, 10000);
    };
  };

  LogViewer.prototype.subscribe = function () {
    var from = this.runtime ? this.replicas : this.last;
    this.ws.send(JSON.stringify({ type: "subscribe", stream: this.stream, from: from }));
  };

  LogViewer.prototype.receive = function (msg) {
    if (msg.stream !== this.stream) { return; }
    if (msg.type === "lines") {
      for (var i = 0; i < msg.lines.length; i++) {
        var line = msg.lines[i];
        if (this.runtime) {
          var r = line[4];
          if (line[0] <= (this.replicas[r] || 0)) { continue; }
          this.replicas[r] = line[0];
        } else {
          if (line[0] <= this.last) { continue; }
          this.last = line[0];
        }
        this.queue.push(line);
      }
      this.schedule();
    } else if (msg.type === "end") {
      if (msg.last > this.last && this.endTries < 3 && !msg.expired) {
        // A gap: ask again from the last line held.
        this.endTries += 1;
        this.ws.send(JSON.stringify({ type: "unsubscribe", stream: this.stream }));
        this.subscribe();
        return;
      }
      this.complete = true;
      this.setState(msg.expired ? "complete (older lines expired)" : "complete: " + msg.last + " lines");
      this.panel.setAttribute("data-complete", String(msg.last));
      // Nothing more will come: no Pause, and the page's heading (status, exit code) refreshes.
      var follow = this.q(".log-follow");
      if (follow) { follow.hidden = true; }
      document.body.dispatchEvent(new CustomEvent("dice:log-complete", { detail: { stream: this.stream, last: msg.last } }));
    } else if (msg.type === "events" && this.eventsBox) {
      for (var j = 0; j < msg.events.length; j++) {
        var ev = msg.events[j], li = document.createElement("li");
        li.className = ev.type === "Warning" ? "ansi-red" : "";
        li.textContent = new Date(ev.timestamp * 1000).toLocaleTimeString() + " " + ev.type + " " + ev.reason + " " + ev.object + ": " + ev.message;
        this.eventsBox.insertBefore(li, this.eventsBox.firstChild);
      }
    } else if (msg.type === "error") {
      this.setState(msg.error);
    }
  };

  LogViewer.prototype.schedule = function () {
    if (this.frame) { return; }
    var self = this;
    this.frame = (root.requestAnimationFrame || function (f) { return setTimeout(f, 16); })(function () { self.frame = null; self.render(); });
  };

  LogViewer.prototype.render = function () {
    var batch = this.queue.splice(0, MAX_RENDER_PER_FRAME);
    if (!batch.length) { return; }
    var frag = document.createDocumentFragment();
    for (var i = 0; i < batch.length; i++) {
      var line = batch[i], row = document.createElement("div");
      var id = this.runtime ? "L-" + line[4] + "-" + line[0] : "L" + line[0];
      row.id = id;
      row.className = "log-line log-" + line[2];
      row.setAttribute("data-text", stripAnsi(line[3]));
      row.innerHTML = '<a class="log-n" href="#' + id + '">' + line[0] + "</a>" +
        (this.runtime ? '<span class="log-replica">' + escapeHtml(line[4]) + "</span>" : "") +
        '<span class="log-t">' + ansiToHtml(line[3]) + "</span>";
      frag.appendChild(row);
      this.rows.push(row);
    }
    var empty = this.body.querySelector(".log-empty");
    if (empty) { empty.remove(); }
    this.body.appendChild(frag);
    if (this.term) { this.search(this.term, true); }
    if (this.following) { this.scrollEnd(); }
    if (!this.hashDone) { this.gotoHash(); }
    if (this.queue.length) { this.schedule(); }
    else if (!this.complete) { this.setState("live: " + this.rows.length + " lines"); }
  };

  LogViewer.prototype.scrollEnd = function () { this.userScrolled = false; this.body.scrollTop = this.body.scrollHeight; };

  LogViewer.prototype.reveal = function (row) {
    this.following = false;
    var follow = this.q(".log-follow");
    if (follow) { follow.textContent = "Follow"; }
    this.body.scrollTop = row.offsetTop - this.body.offsetTop - this.body.clientHeight / 3;
    var old = this.body.querySelector(".log-target");
    if (old) { old.classList.remove("log-target"); }
    row.classList.add("log-target");
  };

  LogViewer.prototype.gotoHash = function () {
    var hash = decodeURIComponent(location.hash.slice(1));
    if (!hash || hash.charAt(0) !== "L") { this.hashDone = true; return; }
    var row = document.getElementById(hash);
    if (row && this.body.contains(row)) { this.hashDone = true; this.reveal(row); }
  };

  LogViewer.prototype.firstError = function () {
    for (var i = 0; i < this.rows.length; i++) {
      if (ERROR_RE.test(this.rows[i].getAttribute("data-text"))) { this.reveal(this.rows[i]); return; }
    }
    this.setState("no line matches error|fail|exception");
  };

  LogViewer.prototype.search = function (term, keep) {
    this.term = term;
    var i;
    for (i = 0; i < this.hits.length; i++) { this.hits[i].classList.remove("log-hit", "log-hit-current"); }
    this.hits = [];
    var count = this.q(".log-count");
    if (!term) { if (count) { count.textContent = ""; } return; }
    var needle = term.toLowerCase();
    for (i = 0; i < this.rows.length; i++) {
      if (this.rows[i].getAttribute("data-text").toLowerCase().indexOf(needle) >= 0) {
        this.rows[i].classList.add("log-hit");
        this.hits.push(this.rows[i]);
      }
    }
    if (!keep || this.hit >= this.hits.length) { this.hit = -1; }
    if (count) { count.textContent = this.hits.length + " found"; }
    if (!keep && this.hits.length) { this.step(1); }
  };

  LogViewer.prototype.step = function (delta) {
    if (!this.hits.length) { return; }
    if (this.hit >= 0 && this.hits[this.hit]) { this.hits[this.hit].classList.remove("log-hit-current"); }
    this.hit = (this.hit + delta + this.hits.length) % this.hits.length;
    this.hits[this.hit].classList.add("log-hit-current");
    this.reveal(this.hits[this.hit]);
    var count = this.q(".log-count");
    if (count) { count.textContent = (this.hit + 1) + " of " + this.hits.length; }
  };

  function init(scope) {
    var panels = (scope || document).querySelectorAll("[data-log-stream]");
    for (var i = 0; i < panels.length; i++) {
      if (!panels[i].diceLogViewer) { panels[i].diceLogViewer = new LogViewer(panels[i]); }
    }
  }

  var api = { ansiToHtml: ansiToHtml, stripAnsi: stripAnsi, LogViewer: LogViewer, init: init };
  if (typeof module !== "undefined" && module.exports) { module.exports = api; }
  else {
    root.DiceLogs = api;
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", function () { init(); }); }
    else { init(); }
    document.addEventListener("htmx:load", function (e) { init(e.target); });
  }
})(typeof window !== "undefined" ? window : this);
