// The agent's page over the documented protocol (docs/protocol.md): presence, queue, offers,
// several chats at once, internal notes, transfers.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var chats = new Map(); // conversation_id -> {el, log, seen:Set, lastSeq, status}
  var me = null, agents = [], departments = [];

  function showError(text) { $("error").textContent = text || ""; $("error").hidden = !text; }

  function renderQueue(entries) {
    var list = $("queue");
    list.innerHTML = "";
    var pickable = new Set((me ? me.departments : []).filter(function (d) { return d.routing === "pick"; }).map(function (d) { return d.id; }));
    entries.forEach(function (e) {
      var li = document.createElement("li");
      li.dataset.conversation = e.conversation_id;
      li.dataset.department = e.department.id;
      li.textContent = "#" + e.position + " " + (e.visitor_name || "Visitor") + " — " + e.department.name +
        " — waiting since " + new Date(e.waiting_since).toLocaleTimeString() + (e.subject ? " — " + e.subject : "");
      if (pickable.has(e.department.id)) {
        var b = document.createElement("button");
        b.textContent = "Take";
        b.addEventListener("click", function () { socket.sendRaw({ type: "take", conversation_id: e.conversation_id }); });
        li.appendChild(b);
      }
      list.appendChild(li);
    });
  }

  var queues = new Map();
  function updateQueue(frame) {
    queues.set(frame.department_id, frame.entries);
    var all = [];
    queues.forEach(function (v) { all = all.concat(v); });
    renderQueue(all);
  }

  function chatFor(c) {
    var id = c.conversation_id;
    if (chats.has(id)) return chats.get(id);
    var tpl = $("chat-template").content.cloneNode(true);
    var el = tpl.querySelector(".chat");
    el.dataset.conversation = id;
    $("chats").appendChild(el);
    var entry = { el: el, log: el.querySelector(".log"), seen: new Set(), lastSeq: 0, status: c.status };
    chats.set(id, entry);
    el.querySelector(".accept").addEventListener("click", function () { socket.sendRaw({ type: "accept", conversation_id: id }); });
    el.querySelector(".decline").addEventListener("click", function () { socket.sendRaw({ type: "decline", conversation_id: id }); });
    el.querySelector(".end").addEventListener("click", function () { socket.sendRaw({ type: "end", conversation_id: id }); });
    var transferTo = el.querySelector(".transfer-to");
    agents.forEach(function (a) { var o = new Option("Agent: " + a.name + " (" + a.presence + ")", "a" + a.user_id); transferTo.add(o); });
    departments.forEach(function (d) { transferTo.add(new Option("Department: " + d.name, "d" + d.id)); });
    el.querySelector(".transfer").addEventListener("submit", function (e) {
      e.preventDefault();
      var v = transferTo.value, note = el.querySelector(".transfer-note").value;
      var frame = { type: "transfer", conversation_id: id, note: note };
      if (v[0] === "a") frame.to_agent = Number(v.slice(1)); else frame.to_department = Number(v.slice(1));
      socket.sendRaw(frame);
    });
    el.querySelector(".composer").addEventListener("submit", function (e) {
      e.preventDefault();
      var input = el.querySelector(".message-input");
      if (!input.value.trim()) { showError("Type a message first."); return; }
      var internal = el.querySelector(".internal").checked;
      socket.sendReliable({ type: "message", conversation_id: id, body: input.value, visibility: internal ? "internal" : "public" });
      input.value = "";
      // One note at a time: a ticked box left over would silently hide the next reply from the visitor.
      el.querySelector(".internal").checked = false;
    });
    // As on the visitor's page: "typing" once, "stopped" after a 2-second pause, so the
    // visitor's indicator goes away (and a keystroke is not a frame).
    var typingTimer = null;
    el.querySelector(".message-input").addEventListener("input", function () {
      if (!typingTimer) socket.sendRaw({ type: "typing", conversation_id: id, active: true });
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(function () {
        socket.sendRaw({ type: "typing", conversation_id: id, active: false });
        typingTimer = null;
      }, 2000);
    });
    return entry;
  }

  function updateChat(c) {
    var entry = chatFor(c);
    entry.status = c.status;
    var v = c.visitor || {};
    entry.el.querySelector(".title").textContent = (v.name || "Visitor") + " — " + (c.department && c.department.name || "") + " — " + c.status;
    entry.el.querySelector(".visitor-info").textContent = [v.email, v.page_url].filter(Boolean).join(" · ");
    // A mock chat a supervisor plays (coaching): handled as usual, but marked as training.
    if (c.is_training) { entry.el.classList.add("training"); entry.el.querySelector(".title").textContent += " — TRAINING"; }
    entry.el.querySelector(".offer").hidden = c.status !== "offered";
    entry.el.querySelector(".active-tools").hidden = c.status !== "active";
    entry.el.classList.toggle("closed", ["queued", "offered", "active"].indexOf(c.status) < 0 && c.status !== "offered");
    updateCount();
  }

  function updateCount() {
    var n = 0;
    chats.forEach(function (c) { if (c.status === "active" || c.status === "offered") n += 1; });
    $("count").textContent = n + " / " + (me ? me.max_chats : "?");
  }

  function renderMessage(m) {
    var entry = chats.get(m.conversation_id);
    if (!entry || entry.seen.has(m.seq)) return;
    entry.seen.add(m.seq);
    entry.lastSeq = Math.max(entry.lastSeq, m.seq);
    var li = document.createElement("li");
    li.className = "msg msg-" + m.role + " vis-" + m.visibility;
    li.dataset.seq = m.seq;
    var label = m.role === "visitor" ? "Visitor" : (m.author || m.role);
    if (m.visibility === "internal") label += " (internal)";
    if (m.visibility === "whisper") label += " (whisper)";
    var b = document.createElement("strong"); b.textContent = label + ": ";
    li.appendChild(b);
    li.appendChild(document.createTextNode(m.body));
    var after = null;
    entry.log.querySelectorAll("li[data-seq]").forEach(function (el) { if (!after && Number(el.dataset.seq) > m.seq) after = el; });
    entry.log.insertBefore(li, after);
  }

  var socket = new window.Coachline.ChatSocket("/ws/agent/", {
    onStatus: function (s) {
      $("connection").textContent = s === "connected" ? "" : "Reconnecting…";
      // A status change made while the socket is down would be lost: enabled again by "state".
      if (s !== "connected") $("presence").disabled = true;
    },
    onOpen: function () {},
    onFrame: function (f) {
      switch (f.type) {
        case "state":
          me = f.me; agents = f.agents; departments = f.all_departments;
          $("presence").value = me.presence;
          $("presence").disabled = false;
          queues.clear(); renderQueue(f.queue);
          f.conversations.forEach(function (c) {
            updateChat(c);
            socket.sendRaw({ type: "sync", conversation_id: c.conversation_id, last_seq: chats.get(c.conversation_id).lastSeq });
          });
          socket.flushOutbox();
          break;
        case "queue": updateQueue(f); break;
        case "offer":
          updateChat(f);
          if (window.Notification && Notification.permission === "granted") new Notification("New chat waiting");
          break;
        case "conversation": updateChat(f); break;
        case "history": updateChat(f.conversation); f.messages.forEach(renderMessage); break;
        case "message": renderMessage(f); break;
        case "offer_withdrawn": case "unassigned": case "ended":
          var entry = chats.get(f.conversation_id);
          if (entry) {
            entry.status = f.type === "ended" ? f.status : "gone";
            entry.el.querySelector(".offer").hidden = true;
            entry.el.querySelector(".active-tools").hidden = true;
            entry.el.querySelector(".title").textContent += " — " + (f.type === "ended" ? "ended" : "no longer yours (" + f.reason + ")");
            updateCount();
          }
          break;
        case "presence": $("presence").value = f.status; if (f.reason === "missed_offer") showError("You missed a chat and were set to away."); break;
        case "typing":
          var t = chats.get(f.conversation_id);
          if (t) t.el.querySelector(".typing").hidden = !f.active;
          break;
        case "error": showError(f.message); break;
      }
    }
  });

  $("presence").addEventListener("change", function (e) { socket.sendRaw({ type: "presence", status: e.target.value }); });
  socket.connect();
})();
