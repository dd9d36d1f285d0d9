// The visitor's chat page over the documented protocol (docs/protocol.md).
(function () {
  "use strict";
  var TOKEN_KEY = "coachline.visitor.token";
  var $ = function (id) { return document.getElementById(id); };
  var form = $("prechat"), chat = $("chat"), log = $("log"), statusLine = $("status"),
      composer = $("composer"), input = $("message-input"), errorBox = $("error"), conn = $("connection");
  var lastSeq = 0, conversationId = null, seen = new Set(), pending = new Map(), open = false;

  function showError(text) { errorBox.textContent = text || ""; errorBox.hidden = !text; }

  function render(frame) {
    if (seen.has(frame.seq)) return;
    seen.add(frame.seq);
    if (frame.client_id && pending.has(frame.client_id)) {
      pending.get(frame.client_id).remove();
      pending.delete(frame.client_id);
    }
    var li = document.createElement("li");
    li.className = "msg msg-" + frame.role;
    li.dataset.seq = frame.seq;
    var who = frame.role === "visitor" ? "You" : (frame.author || (frame.role === "system" ? "" : "Agent"));
    if (who) {
      var b = document.createElement("strong");
      b.textContent = who + ": ";
      li.appendChild(b);
    }
    if (frame.attachment) {
      // A file: a link to it (and a preview of an image) instead of "[Attachment: name]".
      var a = document.createElement("a");
      a.href = frame.attachment.url; a.target = "_blank"; a.rel = "noopener";
      if (frame.attachment.is_image) {
        var img = document.createElement("img");
        img.src = frame.attachment.url; img.alt = frame.attachment.name; img.className = "preview";
        a.appendChild(img);
      } else {
        a.textContent = frame.attachment.name;
      }
      li.appendChild(a);
    } else {
      window.CoachlineText.appendLinked(li, frame.body);
    }
    // Keep order by sequence even when frames arrive out of order after a reconnect.
    var after = null;
    log.querySelectorAll("li[data-seq]").forEach(function (el) {
      if (!after && Number(el.dataset.seq) > frame.seq) after = el;
    });
    log.insertBefore(li, after || log.querySelector("li.pending"));
    lastSeq = Math.max(lastSeq, frame.seq);
  }

  function showConversation(c) {
    if (!c) return;
    conversationId = c.conversation_id;
    form.hidden = true;
    chat.hidden = false;
    open = ["queued", "offered", "active"].indexOf(c.status) >= 0;
    composer.hidden = !open;
    $("end").hidden = !open;
    $("new-chat").hidden = open;
    if (c.status === "queued" || c.status === "offered") {
      statusLine.textContent = c.queue_position ? "You are number " + c.queue_position + " in line." :
        "Connecting you to an agent…";
    } else if (c.status === "active") {
      statusLine.textContent = c.agent ? "You are chatting with " + c.agent.name + "." : "Chatting.";
    } else {
      statusLine.textContent = "This chat has ended.";
    }
  }

  var socket = new window.Coachline.ChatSocket("/ws/visitor/", {
    onStatus: function (s) {
      conn.textContent = s === "connected" ? "" : s === "reconnecting" ? "Reconnecting…" : "Connecting…";
      // A start frame sent before the socket is open would be dropped: no Start until then.
      form.querySelector("button[type=submit]").disabled = s !== "connected";
    },
    onOpen: function () {
      socket.sendRaw({ type: "hello", token: localStorage.getItem(TOKEN_KEY), last_seq: lastSeq,
                       conversation_id: conversationId,
                       page_url: window.location.href, referrer: document.referrer || null });
    },
    onFrame: function (f) {
      switch (f.type) {
        case "welcome":
          if (f.token) localStorage.setItem(TOKEN_KEY, f.token);
          if (f.visitor && f.visitor.name) form.elements.name.value = f.visitor.name;
          if (f.conversation) showConversation(f.conversation);
          socket.flushOutbox();
          break;
        case "history": f.messages.forEach(render); break;
        case "message": render(f); break;
        case "conversation": showConversation(f); break;
        case "queue": if (f.conversation_id === conversationId) statusLine.textContent = "You are number " + f.position + " in line."; break;
        case "typing": $("typing").hidden = !f.active; break;
        case "ack":
          if (pending.has(f.client_id)) pending.get(f.client_id).classList.add("delivered");
          break;
        case "error":
          if (f.code === "invalid_token") {
            localStorage.removeItem(TOKEN_KEY);
            socket.sendRaw({ type: "hello", token: null, last_seq: 0, page_url: window.location.href });
            return;
          }
          if (f.ref && pending.has(f.ref)) { pending.get(f.ref).classList.add("failed"); }
          showError(f.message);
          break;
      }
    }
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    showError("");
    var data = new FormData(form);
    var sent = socket.sendRaw({ type: "start", department: data.get("department"), name: data.get("name"),
                                email: data.get("email") || null, message: data.get("message") || null,
                                client_id: window.Coachline.uuid() });
    if (!sent) showError("Not connected yet; try again in a moment.");
  });

  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = input.value;
    if (!body.trim()) { showError("Type a message first."); return; }
    showError("");
    var id = socket.sendReliable({ type: "message", body: body });
    var li = document.createElement("li");
    li.className = "msg msg-visitor pending";
    li.textContent = "You: " + body;
    log.appendChild(li);
    pending.set(id, li);
    input.value = "";
  });

  var typingTimer = null;
  input.addEventListener("input", function () {
    if (!typingTimer) socket.sendRaw({ type: "typing", active: true });
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(function () { socket.sendRaw({ type: "typing", active: false }); typingTimer = null; }, 2000);
  });
  $("end").addEventListener("click", function () { socket.sendRaw({ type: "end" }); });
  $("new-chat").addEventListener("click", function () {
    chat.hidden = true; form.hidden = false; log.innerHTML = ""; seen.clear(); lastSeq = 0;
  });
  socket.connect();
})();
