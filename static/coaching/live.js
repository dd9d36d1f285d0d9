// The supervisor's live view over /ws/supervisor/ (docs/protocol.md, "Supervisor socket"):
// every open chat of the supervisor's departments, pushed by the server as chats are queued,
// accepted, transferred and ended (live_row / live_remove); waits and durations count up here
// between pushes. Sit in on one (read-only, the visitor is not told), whisper to its agent, or
// join the chat publicly.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var following = null, seen = new Set(), joined = false;
  // conversation id -> {row, at}: the server's row and when it arrived (performance.now()).
  var rows = new Map();

  function showError(text) { $("error").textContent = text || ""; $("error").hidden = !text; }

  function duration(seconds) {
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function elapsed(entry) { return Math.floor((window.performance.now() - entry.at) / 1000); }

  function timeCells(entry) {
    var r = entry.row, e = elapsed(entry);
    return [duration(r.wait_seconds + (r.waiting ? e : 0)), duration(r.duration_seconds + e)];
  }

  function buildRow(r) {
    var tr = document.createElement("tr");
    tr.dataset.conversation = r.conversation_id;
    tr.dataset.status = r.status;
    var cells = [
      "Chat " + r.conversation_id + (r.is_training ? " (training)" : "") + (r.visitor_name ? " — " + r.visitor_name : ""),
      r.department.name,
      r.agent ? r.agent.name : "—",
      r.status,
      "", ""
    ];
    cells.forEach(function (text, i) {
      var td = document.createElement("td");
      td.textContent = text;
      if (i === 4) td.className = "live-wait";
      if (i === 5) td.className = "live-duration";
      tr.appendChild(td);
    });
    var td = document.createElement("td");
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = "Sit in";
    b.addEventListener("click", function () { sitIn(r.conversation_id); });
    td.appendChild(b);
    tr.appendChild(td);
    return tr;
  }

  function tick() {
    $("live-rows").querySelectorAll("tr[data-conversation]").forEach(function (tr) {
      var entry = rows.get(Number(tr.dataset.conversation));
      if (!entry) return;
      var t = timeCells(entry);
      tr.querySelector(".live-wait").textContent = t[0];
      tr.querySelector(".live-duration").textContent = t[1];
    });
  }

  function render() {
    var body = $("live-rows");
    body.textContent = "";
    Array.from(rows.values())
      .sort(function (a, b) { return a.row.conversation_id - b.row.conversation_id; })
      .forEach(function (entry) { body.appendChild(buildRow(entry.row)); });
    $("live-empty").hidden = rows.size > 0;
    tick();
  }

  function renderLive(list) {
    var now = window.performance.now();
    rows = new Map();
    list.forEach(function (r) { rows.set(r.conversation_id, { row: r, at: now }); });
    render();
  }

  function upsert(r) { rows.set(r.conversation_id, { row: r, at: window.performance.now() }); render(); }
  function remove(id) { rows.delete(id); render(); }

  function sitIn(id) {
    if (following !== null) socket.sendRaw({ type: "leave", conversation_id: following });
    following = id; seen = new Set(); joined = false;
    $("sitin-log").textContent = "";
    $("sitin-title").textContent = "Sitting in on chat " + id;
    $("sitin").hidden = false;
    $("public-form").hidden = true;
    $("barge-in").hidden = false;
    socket.sendRaw({ type: "sit_in", conversation_id: id });
  }

  function renderMessage(m) {
    if (m.conversation_id !== following || seen.has(m.seq)) return;
    seen.add(m.seq);
    var li = document.createElement("li");
    li.className = "msg msg-" + m.role + " vis-" + m.visibility;
    li.dataset.seq = m.seq;
    var label = m.role === "visitor" ? "Visitor" : (m.author || m.role);
    if (m.visibility === "internal") label += " (internal)";
    if (m.visibility === "whisper") label += " (whisper)";
    if (m.meta && m.meta.canned) label += " [/" + m.meta.canned.shortcut + "]";
    var b = document.createElement("strong"); b.textContent = label + ": ";
    li.appendChild(b);
    li.appendChild(document.createTextNode(m.body));
    var after = null;
    $("sitin-log").querySelectorAll("li[data-seq]").forEach(function (el) { if (!after && Number(el.dataset.seq) > m.seq) after = el; });
    $("sitin-log").insertBefore(li, after);
  }

  var socket = new window.Coachline.ChatSocket("/ws/supervisor/", {
    onStatus: function (s) { $("connection").textContent = s === "connected" ? "" : "Reconnecting…"; },
    onOpen: function () {
      // The server sends the whole list on every (re)connection; changes after it are pushed.
      if (following !== null) socket.sendRaw({ type: "sit_in", conversation_id: following, last_seq: Math.max(0, Math.max.apply(null, [0].concat(Array.from(seen)))) });
      socket.flushOutbox();
    },
    onFrame: function (f) {
      switch (f.type) {
        case "live": renderLive(f.conversations); break;
        case "live_row": upsert(f.conversation); break;
        case "live_remove": remove(f.conversation_id); break;
        case "left":
          // The chat left this supervisor's departments (a transfer) or the department was
          // taken away: the sit-in ends here.
          if (f.conversation_id !== following) break;
          following = null;
          $("sitin").hidden = true;
          showError("Chat " + f.conversation_id + " is no longer in your departments; you stopped following it.");
          break;
        case "history": f.messages.forEach(renderMessage); break;
        case "message":
          renderMessage(f);
          if (f.role === "system" && f.body === "A supervisor joined the chat.") { /* shown in the log */ }
          break;
        case "typing":
          if (f.conversation_id !== following) break;
          $("sitin-typing").textContent = (f.role === "agent" ? "The agent" : "The visitor") + " is typing…";
          $("sitin-typing").hidden = !f.active;
          break;
        case "error": showError(f.message); break;
      }
    }
  });

  $("whisper-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("whisper-input");
    if (!input.value.trim() || following === null) { showError("Type a whisper first."); return; }
    showError("");
    socket.sendReliable({ type: "whisper", conversation_id: following, body: input.value });
    input.value = "";
  });
  $("barge-in").addEventListener("click", function () {
    if (following === null) return;
    socket.sendRaw({ type: "barge_in", conversation_id: following });
    joined = true;
    $("barge-in").hidden = true;
    $("public-form").hidden = false;
  });
  $("take-over").addEventListener("click", function () {
    if (following === null) return;
    // The chat moves to this supervisor's own workspace (it needs an agent profile there).
    socket.sendRaw({ type: "take_over", conversation_id: following });
    joined = true;
    $("barge-in").hidden = true;
    $("public-form").hidden = false;
  });
  $("public-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("public-input");
    if (!input.value.trim() || following === null || !joined) return;
    socket.sendReliable({ type: "message", conversation_id: following, body: input.value });
    input.value = "";
  });

  socket.connect();
  // Only the clock runs here: no request goes to the server for the list.
  window.setInterval(tick, 1000);
})();
