// The agent's page over the documented protocol (docs/protocol.md): presence, queue, offers,
// several chats at once, internal notes, transfers, canned responses, @tags, the visitor panel
// and direct messages between agents. All chat text is set with textContent, never as HTML.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var chats = new Map(); // conversation_id -> {el, log, seen:Set, lastSeq, status, canned, cannedUsed, unread, helping}
  var me = null, agents = [], departments = [];
  var focused = null; // the chat the agent last clicked or typed in: its messages are read

  function showError(text) { $("error").textContent = text || ""; $("error").hidden = !text; }

  // Extensions of the workspace (static/chat/wrapup.js: files, closing, blocking) hook in here
  // instead of growing this file: "frame" (every frame), "chat" (a card drawn or updated),
  // "message" (a message line added).
  var hooks = {};
  function emit(name, a, b) {
    (hooks[name] || []).forEach(function (fn) {
      try { fn(a, b); } catch (e) { window.console && console.error(e); }
    });
  }
  window.Coachline = window.Coachline || {};
  window.Coachline.workspace = {
    on: function (name, fn) { (hooks[name] = hooks[name] || []).push(fn); },
    send: function (frame) { return socket.sendRaw(frame); },
    showError: showError,
    alertUser: function (title, body) { alertUser(title, body); },
    // A closed chat's card goes away; its messages are in the transcript.
    removeChat: function (id) {
      var entry = chats.get(id);
      if (!entry) return;
      if (focused === entry) focused = null;
      entry.el.remove();
      chats.delete(id);
      updateCount();
    }
  };

  // --- alerts: sound (WebAudio) and browser notifications, both remembered per browser -------
  var prefs = { sound: "coachline.alert.sound", notify: "coachline.alert.notify" };
  function pref(name) { try { return window.localStorage.getItem(prefs[name]) === "1"; } catch (e) { return false; } }
  function setPref(name, on) { try { window.localStorage.setItem(prefs[name], on ? "1" : "0"); } catch (e) { /* private mode */ } }
  var audio = null;
  function beep() {
    if (!pref("sound")) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.25].forEach(function (at) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.15, audio.currentTime + at);
        gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.2);
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(audio.currentTime + at); osc.stop(audio.currentTime + at + 0.2);
      });
    } catch (e) { /* no audio device: the visible alert is enough */ }
  }
  function notify(title, body) {
    if (!pref("notify") || !window.Notification || Notification.permission !== "granted") return;
    try { new Notification(title, { body: body || "" }); } catch (e) { /* some browsers need a service worker */ }
  }
  function alertUser(title, body) { beep(); notify(title, body); }
  $("alert-sound").checked = pref("sound");
  $("alert-notify").checked = pref("notify");
  $("alert-sound").addEventListener("change", function (e) { setPref("sound", e.target.checked); if (e.target.checked) beep(); });
  $("alert-notify").addEventListener("change", function (e) {
    setPref("notify", e.target.checked);
    if (e.target.checked && window.Notification && Notification.permission === "default") Notification.requestPermission();
  });

  // --- queue with live wait times -------------------------------------------------------
  function waited(since) {
    var s = Math.max(0, Math.floor((Date.now() - new Date(since).getTime()) / 1000));
    var m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function renderQueue(entries) {
    var list = $("queue");
    list.innerHTML = "";
    var pickable = new Set((me ? me.departments : []).filter(function (d) { return d.routing === "pick"; }).map(function (d) { return d.id; }));
    entries.forEach(function (e) {
      var li = document.createElement("li");
      li.dataset.conversation = e.conversation_id;
      li.dataset.department = e.department.id;
      li.appendChild(document.createTextNode("#" + e.position + " " + (e.visitor_name || "Visitor") + " — " + e.department.name + " — waiting "));
      var w = document.createElement("span");
      w.className = "wait";
      w.dataset.since = e.waiting_since;
      w.textContent = waited(e.waiting_since);
      li.appendChild(w);
      if (e.subject) li.appendChild(document.createTextNode(" — " + e.subject));
      if (pickable.has(e.department.id)) {
        var b = document.createElement("button");
        b.textContent = "Take";
        b.addEventListener("click", function () { socket.sendRaw({ type: "take", conversation_id: e.conversation_id }); });
        li.appendChild(b);
      }
      list.appendChild(li);
    });
  }
  window.setInterval(function () {
    document.querySelectorAll("#queue .wait").forEach(function (w) { w.textContent = waited(w.dataset.since); });
  }, 1000);

  var queues = new Map();
  function updateQueue(frame) {
    var before = 0;
    queues.forEach(function (v) { before += v.length; });
    queues.set(frame.department_id, frame.entries);
    var all = [];
    queues.forEach(function (v) { all = all.concat(v); });
    renderQueue(all);
    if (all.length > before && frame.entries.length) alertUser("A visitor is waiting", all[all.length - 1].visitor_name || "");
  }

  // --- chats ------------------------------------------------------------------------------
  function markRead(entry) {
    focused = entry;
    entry.unread = 0;
    renderUnread(entry);
  }
  function renderUnread(entry) {
    var u = entry.el.querySelector(".unread");
    u.textContent = entry.unread ? entry.unread + " unread" : "";
    u.hidden = !entry.unread;
  }

  function chatFor(c) {
    var id = c.conversation_id;
    if (chats.has(id)) return chats.get(id);
    var tpl = $("chat-template").content.cloneNode(true);
    var el = tpl.querySelector(".chat");
    el.dataset.conversation = id;
    $("chats").appendChild(el);
    var entry = { el: el, log: el.querySelector(".log"), seen: new Set(), lastSeq: 0, status: c.status,
                  canned: [], cannedUsed: null, unread: 0, helping: false, panelLoaded: false };
    chats.set(id, entry);
    el.addEventListener("click", function () { markRead(entry); });
    el.addEventListener("focusin", function () { markRead(entry); });
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
    var input = el.querySelector(".message-input");
    var hint = el.querySelector(".canned-hint");
    function setHint(text, bad) { hint.textContent = text || ""; hint.classList.toggle("bad", !!bad); }
    function insertCanned(r) {
      input.value = r.body;
      entry.cannedUsed = r.id;
      setHint("Canned response /" + r.shortcut + " inserted: edit it if you like, then Send.");
      input.focus();
    }
    // "/shortcut" alone in the box becomes the response; an unknown one keeps the text as typed.
    function expandShortcut() {
      var m = /^\/([\w-]+)$/.exec(input.value.trim());
      if (!m) return false;
      var r = entry.canned.filter(function (x) { return x.shortcut === m[1].toLowerCase(); })[0];
      if (r) insertCanned(r);
      else setHint("No canned response /" + m[1] + ". Your text is kept; open the list below to search.", true);
      return true;
    }
    input.addEventListener("keydown", function (e) {
      if (e.key === "Tab" && !e.shiftKey && expandShortcut()) e.preventDefault();
    });
    el.querySelector(".composer").addEventListener("submit", function (e) {
      e.preventDefault();
      if (!input.value.trim()) { showError("Type a message first."); return; }
      if (expandShortcut()) return; // shown for review first, sent by the next Send
      var internal = entry.helping || el.querySelector(".internal").checked;
      var frame = { type: "message", conversation_id: id, body: input.value, visibility: internal ? "internal" : "public" };
      if (entry.cannedUsed !== null && !internal) frame.canned_id = entry.cannedUsed;
      socket.sendReliable(frame);
      input.value = "";
      entry.cannedUsed = null;
      setHint("");
      // One note at a time: a ticked box left over would silently hide the next reply from the visitor.
      el.querySelector(".internal").checked = entry.helping;
    });
    // As on the visitor's page: "typing" once, "stopped" after a 2-second pause, so the
    // visitor's indicator goes away (and a keystroke is not a frame).
    var typingTimer = null;
    input.addEventListener("input", function () {
      if (!input.value.trim()) entry.cannedUsed = null;
      if (entry.helping) return; // a helper's typing must not show to the visitor
      if (!typingTimer) socket.sendRaw({ type: "typing", conversation_id: id, active: true });
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(function () {
        socket.sendRaw({ type: "typing", conversation_id: id, active: false });
        typingTimer = null;
      }, 2000);
    });
    var search = el.querySelector(".canned-search");
    search.addEventListener("input", function () { renderCanned(entry); });
    entry.insertCanned = insertCanned;
    return entry;
  }

  function renderCanned(entry) {
    var q = entry.el.querySelector(".canned-search").value.trim().toLowerCase();
    var list = entry.el.querySelector(".canned-list");
    list.innerHTML = "";
    entry.canned.filter(function (r) {
      return !q || (r.shortcut + " " + r.title + " " + r.body).toLowerCase().indexOf(q) >= 0;
    }).forEach(function (r) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button";
      b.className = "canned-item";
      b.textContent = "/" + r.shortcut + " — " + r.title + " (" + r.scope + ")";
      b.title = r.body;
      b.addEventListener("click", function () { entry.insertCanned(r); });
      li.appendChild(b);
      list.appendChild(li);
    });
  }

  function updateChat(c, opts) {
    var entry = chatFor(c);
    var wasActive = entry.status === "active";
    entry.status = c.status;
    // Helping is set by a helper's history and cleared when the chat is offered to this agent.
    if (opts && typeof opts.helping === "boolean") entry.helping = opts.helping;
    var v = c.visitor || {};
    entry.el.classList.toggle("helping", entry.helping);
    entry.el.querySelector(".helping-info").hidden = !entry.helping;
    entry.el.querySelector(".title").textContent = (v.name || "Visitor") + " — " + (c.department && c.department.name || "") + " — " + c.status;
    entry.el.querySelector(".visitor-info").textContent = [v.email, v.page_url].filter(Boolean).join(" · ");
    // A mock chat a supervisor plays (coaching): handled as usual, but marked as training.
    if (c.is_training) { entry.el.classList.add("training"); entry.el.querySelector(".title").textContent += " — TRAINING"; }
    entry.el.querySelector(".offer").hidden = c.status !== "offered" || entry.helping;
    entry.el.querySelector(".active-tools").hidden = c.status !== "active";
    // A helper writes internal notes only and cannot end or hand over someone else's chat.
    entry.el.querySelector(".end").hidden = entry.helping;
    entry.el.querySelector(".transfer").hidden = entry.helping;
    entry.el.querySelector(".canned-picker").hidden = entry.helping;
    var box = entry.el.querySelector(".internal");
    if (entry.helping) box.checked = true;
    box.disabled = entry.helping;
    if (c.transfer_note) {
      var t = entry.el.querySelector(".transfer-received");
      t.textContent = "Transfer note: " + c.transfer_note;
      t.hidden = false;
    }
    entry.el.classList.toggle("closed", ["queued", "offered", "active"].indexOf(c.status) < 0);
    if (c.status === "active" && !wasActive && !entry.helping) socket.sendRaw({ type: "canned", conversation_id: c.conversation_id });
    if (!entry.panelLoaded && (c.status === "active" || c.status === "offered")) {
      entry.panelLoaded = true;
      socket.sendRaw({ type: "visitor", conversation_id: c.conversation_id });
    }
    updateCount();
    emit("chat", entry, c);
  }

  function chatGone(id, status, why) {
    var entry = chats.get(id);
    if (!entry) return;
    entry.status = status;
    entry.el.querySelector(".offer").hidden = true;
    entry.el.querySelector(".active-tools").hidden = true;
    entry.el.querySelector(".title").textContent += " — " + why;
    entry.el.querySelector(".typing").hidden = true;
    updateCount();
    emit("chat", entry, { conversation_id: id, status: entry.status });
  }

  function updateCount() {
    var n = 0;
    chats.forEach(function (c) { if (!c.helping && (c.status === "active" || c.status === "offered")) n += 1; });
    $("count").textContent = n + " / " + (me ? me.max_chats : "?");
  }

  function renderMessage(m) {
    var entry = chats.get(m.conversation_id);
    if (!entry || entry.seen.has(m.seq)) return;
    var live = entry.lastSeq > 0 && m.seq > entry.lastSeq;
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
    window.CoachlineText.appendLinked(li, m.body);
    if (m.meta && m.meta.canned) {
      var tag = document.createElement("small");
      tag.className = "canned-tag";
      tag.textContent = " [/" + m.meta.canned.shortcut + (m.meta.canned.edited ? ", edited" : "") + "]";
      li.appendChild(tag);
    }
    emit("message", li, m);
    var after = null;
    entry.log.querySelectorAll("li[data-seq]").forEach(function (el) { if (!after && Number(el.dataset.seq) > m.seq) after = el; });
    entry.log.insertBefore(li, after);
    var mine = me && m.sender_id === me.user_id;
    if (live && !mine && (focused !== entry || document.hidden)) {
      entry.unread += 1;
      renderUnread(entry);
      if (m.role === "visitor") alertUser("New message from " + (entry.el.querySelector(".title").textContent.split(" — ")[0]), m.body);
    }
  }

  // --- visitor panel ----------------------------------------------------------------------
  function addField(dl, name, value) {
    var dt = document.createElement("dt"); dt.textContent = name;
    var dd = document.createElement("dd"); dd.textContent = value || "—";
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function linkItem(list, text, url) {
    var li = document.createElement("li");
    if (url) { var a = document.createElement("a"); a.href = url; a.target = "_blank"; a.rel = "noopener"; a.textContent = text; li.appendChild(a); }
    else li.textContent = text;
    list.appendChild(li);
  }
  function renderPanel(f) {
    var entry = chats.get(f.conversation_id);
    if (!entry) return;
    var p = entry.el.querySelector(".visitor-panel");
    var fields = p.querySelector(".visitor-fields"); fields.innerHTML = "";
    addField(fields, "Name", f.visitor.name);
    addField(fields, "E-mail", f.visitor.email);
    addField(fields, "Page", f.visitor.page_url);
    addField(fields, "Referrer", f.visitor.referrer);
    var prev = p.querySelector(".previous"); prev.innerHTML = "";
    if (!f.previous.length) prev.textContent = "None.";
    f.previous.forEach(function (c) {
      linkItem(prev, new Date(c.created_at).toLocaleString() + " — " + c.department + " — " + c.status + (c.subject ? " — " + c.subject : ""), c.transcript_url);
    });
    var tickets = p.querySelector(".tickets"); tickets.innerHTML = "";
    if (!f.tickets.length) tickets.textContent = "None.";
    f.tickets.forEach(function (t) { linkItem(tickets, "#" + t.ticket_id + " " + t.subject + " (" + t.status + ")", t.transcript_url); });
    var status = p.querySelector(".crm-status"), crmFields = p.querySelector(".crm-fields");
    crmFields.innerHTML = "";
    status.classList.toggle("bad", f.crm.status === "unreachable");
    status.textContent = {
      off: "No CRM configured.", ok: "", skipped: f.crm.reason,
      unreachable: "CRM unreachable: " + (f.crm.reason || "")
    }[f.crm.status] || f.crm.status;
    if (f.crm.status === "ok") {
      var keys = Object.keys(f.crm.fields);
      if (!keys.length) status.textContent = "No customer record found.";
      keys.forEach(function (k) { addField(crmFields, k, f.crm.fields[k]); });
    }
  }

  // --- @tags: notifications and helping ---------------------------------------------------
  function showMention(f) {
    var li = document.createElement("li");
    li.className = "mention";
    li.dataset.conversation = f.conversation_id;
    li.appendChild(document.createTextNode((f.by || "An agent") + " tagged you in the chat with " + (f.visitor_name || "a visitor") + ": \u201c" + f.body + "\u201d "));
    var open = document.createElement("button");
    open.type = "button"; open.textContent = "Open chat";
    open.addEventListener("click", function () { socket.sendRaw({ type: "open", conversation_id: f.conversation_id }); li.remove(); });
    var dismiss = document.createElement("button");
    dismiss.type = "button"; dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", function () { li.remove(); });
    li.appendChild(open); li.appendChild(dismiss);
    $("notifications").appendChild(li);
    alertUser((f.by || "An agent") + " tagged you", f.body);
  }

  // --- direct messages between agents -----------------------------------------------------
  var dmWith = null;
  function renderTeam() {
    var team = $("team"); team.innerHTML = "";
    agents.forEach(function (a) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button"; b.className = "dm-open"; b.dataset.user = a.user_id;
      b.textContent = a.name + " (" + a.presence + ")";
      b.addEventListener("click", function () { openDm(a.user_id); });
      li.appendChild(b);
      var badge = document.createElement("span"); badge.className = "unread"; badge.hidden = true;
      li.appendChild(badge);
      team.appendChild(li);
    });
  }
  function agentName(id) { var a = agents.filter(function (x) { return x.user_id === id; })[0]; return a ? a.name : "Agent " + id; }
  function openDm(userId) {
    dmWith = userId;
    $("dm").hidden = false;
    $("dm-title").textContent = "Direct messages with " + agentName(userId);
    $("dm-log").innerHTML = "";
    var badge = document.querySelector('#team [data-user="' + userId + '"] + .unread');
    if (badge) badge.hidden = true;
    socket.sendRaw({ type: "dm_history", with: userId });
  }
  function renderDm(d) {
    var peer = d.from === me.user_id ? d.to : d.from;
    if (peer !== dmWith) {
      var badge = document.querySelector('#team [data-user="' + peer + '"] + .unread');
      if (badge) { badge.textContent = "new"; badge.hidden = false; }
      if (d.from !== me.user_id) alertUser("Message from " + agentName(d.from), d.body);
      return;
    }
    if (document.querySelector('#dm-log [data-dm="' + d.id + '"]')) return;
    var li = document.createElement("li");
    li.className = "msg"; li.dataset.dm = d.id;
    var b = document.createElement("strong"); b.textContent = (d.from === me.user_id ? "You" : agentName(d.from)) + ": ";
    li.appendChild(b); li.appendChild(document.createTextNode(d.body));
    $("dm-log").appendChild(li);
  }
  $("dm-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("dm-input").value;
    if (!text.trim() || dmWith === null) return;
    if (socket.sendRaw({ type: "dm", to: dmWith, body: text, client_id: window.Coachline.uuid() })) $("dm-input").value = "";
    else showError("Not connected; your message is still in the box.");
  });

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
          // Also after a reconnection, or on the same socket once the server's live stream is
          // repaired (docs/protocol.md, Resume): an open chat missing from it was taken away
          // while this page could not hear it (a transfer, an offer that timed out).
          var held = new Set(f.conversations.map(function (c) { return c.conversation_id; }));
          chats.forEach(function (entry, id) {
            if (!held.has(id) && !entry.helping && (entry.status === "active" || entry.status === "offered")) {
              chatGone(id, "gone", "no longer yours");
            }
          });
          $("presence").value = me.presence;
          $("presence").disabled = false;
          // Kept per department so that a later "queue" frame alerts only on a real newcomer.
          queues.clear();
          (me.departments || []).forEach(function (d) { queues.set(d.id, []); });
          f.queue.forEach(function (e) { (queues.get(e.department.id) || queues.set(e.department.id, []).get(e.department.id)).push(e); });
          renderQueue(f.queue);
          renderTeam();
          f.conversations.forEach(function (c) {
            updateChat(c, { helping: false });
            // `synced`: after an outage the server sends these chats' missed messages itself.
            if ((f.synced || []).indexOf(c.conversation_id) < 0) {
              socket.sendRaw({ type: "sync", conversation_id: c.conversation_id, last_seq: chats.get(c.conversation_id).lastSeq });
            }
          });
          // Chats this agent was helping in: ask again; ended or no longer allowed ones answer not_found.
          chats.forEach(function (entry, id) {
            if (entry.helping && entry.status !== "ended") socket.sendRaw({ type: "open", conversation_id: id });
          });
          socket.flushOutbox();
          break;
        case "queue": updateQueue(f); break;
        case "offer":
          updateChat(f, { helping: false });
          alertUser("New chat waiting", (f.visitor && f.visitor.name || "A visitor") + (f.subject ? ": " + f.subject : ""));
          break;
        case "conversation": updateChat(f); break;
        case "history": updateChat(f.conversation, { helping: !!f.helping }); f.messages.forEach(renderMessage); break;
        case "message": renderMessage(f); break;
        case "canned":
          var ce = chats.get(f.conversation_id);
          if (ce) { ce.canned = f.responses; renderCanned(ce); }
          break;
        case "visitor": renderPanel(f); break;
        case "mention": showMention(f); break;
        case "dm": renderDm(f); break;
        case "dm_history": if (f.with === dmWith) { $("dm-log").innerHTML = ""; f.messages.forEach(renderDm); } break;
        case "offer_withdrawn": case "unassigned": case "ended":
          chatGone(f.conversation_id, f.type === "ended" ? f.status : "gone",
                   f.type === "ended" ? "ended" : "no longer yours (" + f.reason + ")");
          break;
        case "presence": $("presence").value = f.status; if (f.reason === "missed_offer") showError("You missed a chat and were set to away."); break;
        case "typing":
          var t = chats.get(f.conversation_id);
          if (t) t.el.querySelector(".typing").hidden = !f.active;
          break;
        case "error": showError(f.message); break;
      }
      emit("frame", f);
    }
  });

  $("presence").addEventListener("change", function (e) { socket.sendRaw({ type: "presence", status: e.target.value }); });
  socket.connect();
})();
