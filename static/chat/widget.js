// The embeddable visitor widget. On any site:
//   <script src="https://chat.example/static/chat/widget.js" data-department="support" async></script>
// It draws itself inside a Shadow DOM (the host page's styles do not reach it, and its styles do
// not reach the host page) and speaks the visitor protocol of docs/protocol.md to the server the
// script came from. Token, last seq, outbox and draft live in the host's localStorage, so the chat
// survives navigation and reloads on the host site.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__coachlineWidget) return;
  window.__coachlineWidget = true;
  var BASE = new URL(script.src, window.location.href).origin;
  var WANTED_DEPARTMENT = script.getAttribute("data-department") || "";
  var KEY = "coachline.widget:" + BASE;

  // --- persistent state (host's localStorage) -------------------------------------------
  function load() {
    try { return JSON.parse(window.localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  var saved = load();
  var store = {
    token: saved.token || null,
    lastSeq: saved.lastSeq || 0,
    conversationId: saved.conversationId || null,
    outbox: saved.outbox || [],          // [{client_id, body}] not yet stored by the server
    draft: saved.draft || "",
    open: !!saved.open,
    surveyed: saved.surveyed || [],      // conversation ids whose survey was answered
    invitationId: saved.invitationId || null,
    visit: saved.visit || null           // {started, seen, invited: [rule ids]}: time on the site
  };
  function persist() {
    try { window.localStorage.setItem(KEY, JSON.stringify(store)); } catch (e) { /* private mode: in-memory only */ }
  }

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "w-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  // --- the UI, inside a shadow root --------------------------------------------------------
  var host = document.createElement("div");
  host.id = "coachline-widget";
  var root = host.attachShadow({ mode: "open" });
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (text) node.textContent = text;
    return node;
  }
  // Message text with http(s) addresses as links, as static/compliance/content_safety.js does on
  // Coachline's own pages (the widget runs on the customer's page, which does not load that file):
  // text nodes only, and no scheme but http and https becomes a link.
  function appendLinked(parent, text) {
    var re = /\bhttps?:\/\/[^\s<>"']+/gi, last = 0;
    text.replace(re, function (match, offset) {
      var address = match.replace(/[.,;:!?)\]]+$/, ""), href = null;
      try { var u = new URL(address); if (u.protocol === "http:" || u.protocol === "https:") href = u.href; } catch (e) { /* plain text */ }
      if (!href) return match;
      if (offset > last) parent.appendChild(document.createTextNode(text.slice(last, offset)));
      parent.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow" }, address));
      last = offset + address.length;
      return match;
    });
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }
  function field(labelText, input) {
    var label = el("label");
    var span = el("span", { class: "label" }, labelText);
    label.appendChild(span);
    label.appendChild(input);
    return label;
  }

  var css = el("link", { rel: "stylesheet", href: BASE + "/static/chat/widget.css" });
  var launcher = el("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "cl-panel" }, "Chat with us");
  var panel = el("section", { class: "panel", id: "cl-panel", role: "dialog", "aria-label": "Chat" });
  panel.hidden = true;
  var header = el("header");
  var title = el("h2", {}, "Chat with us");
  var minimize = el("button", { class: "close", type: "button", "aria-label": "Close chat window" }, "×");
  header.appendChild(title); header.appendChild(minimize);
  var notice = el("p", { class: "notice", role: "alert" }); notice.hidden = true;
  var connection = el("p", { class: "connection", role: "status" });

  // Pre-chat / offline form (one form: the department decides which it is).
  var form = el("form", { class: "prechat", novalidate: "" });
  var nameInput = el("input", { name: "name", maxlength: "100", autocomplete: "name" });
  var emailInput = el("input", { name: "email", type: "email", maxlength: "254", autocomplete: "email" });
  var deptSelect = el("select", { name: "department" });
  var questionInput = el("textarea", { name: "message", rows: "3", maxlength: "4000" });
  var offlineText = el("p", { class: "offline-text" }); offlineText.hidden = true;
  var formError = el("p", { class: "form-error", role: "alert" }); formError.hidden = true;
  var nameLabel = field("Your name", nameInput), emailLabel = field("E-mail", emailInput),
      questionLabel = field("How can we help?", questionInput);
  var startButton = el("button", { type: "submit", class: "primary" }, "Start chat");
  [offlineText, nameLabel, emailLabel, field("Department", deptSelect), questionLabel, formError, startButton]
    .forEach(function (n) { form.appendChild(n); });
  var offlineDone = el("p", { class: "offline-done", role: "status" }); offlineDone.hidden = true;

  // The chat.
  var chatView = el("div", { class: "chat" }); chatView.hidden = true;
  var agentCard = el("div", { class: "agent" });
  var statusLine = el("p", { class: "status" });
  var log = el("ol", { class: "log", "aria-live": "polite", "aria-label": "Messages" });
  var typingLine = el("p", { class: "typing" }); typingLine.hidden = true;
  var composer = el("form", { class: "composer" });
  var input = el("textarea", { rows: "2", maxlength: "4000", "aria-label": "Message" });
  var sendButton = el("button", { type: "submit", class: "primary" }, "Send");
  var fileInput = el("input", { type: "file", hidden: "" });
  var attachButton = el("button", { type: "button", class: "attach-button", "aria-label": "Attach a file", title: "Attach a file" }, "📎");
  attachButton.hidden = true;
  composer.appendChild(input); composer.appendChild(attachButton); composer.appendChild(fileInput); composer.appendChild(sendButton);
  var endButton = el("button", { type: "button", class: "end" }, "End chat");
  [agentCard, statusLine, log, typingLine, composer, endButton].forEach(function (n) { chatView.appendChild(n); });

  // After the chat: survey, transcript, new chat.
  var after = el("div", { class: "after" }); after.hidden = true;
  var survey = el("form", { class: "survey" });
  var ratingSet = el("fieldset");
  ratingSet.appendChild(el("legend", {}, "How was your chat?"));
  for (var r = 1; r <= 5; r++) {
    var radio = el("input", { type: "radio", name: "rating", value: String(r) });
    var rl = el("label", { class: "rating" });
    rl.appendChild(radio); rl.appendChild(document.createTextNode(" " + r + (r === 1 ? " (poor)" : r === 5 ? " (excellent)" : "")));
    ratingSet.appendChild(rl);
  }
  var commentInput = el("textarea", { name: "comment", rows: "2", maxlength: "2000" });
  var extraQuestions = el("div", { class: "questions" });
  var surveyButton = el("button", { type: "submit", class: "primary" }, "Send feedback");
  var surveyDone = el("p", { class: "survey-done", role: "status" }); surveyDone.hidden = true;
  [ratingSet, field("Comment (optional)", commentInput), extraQuestions, surveyButton].forEach(function (n) { survey.appendChild(n); });
  var transcriptForm = el("form", { class: "transcript" });
  var transcriptEmail = el("input", { type: "email", maxlength: "254", autocomplete: "email" });
  var transcriptButton = el("button", { type: "submit" }, "E-mail me the transcript");
  var transcriptDone = el("p", { class: "transcript-done", role: "status" }); transcriptDone.hidden = true;
  transcriptForm.appendChild(field("Send the transcript to", transcriptEmail)); transcriptForm.appendChild(transcriptButton);
  var newChat = el("button", { type: "button", class: "new-chat" }, "Start a new chat");
  [survey, surveyDone, transcriptForm, transcriptDone, newChat].forEach(function (n) { after.appendChild(n); });

  // A proactive invitation.
  var invite = el("div", { class: "invite", role: "dialog", "aria-label": "Invitation to chat" }); invite.hidden = true;
  var inviteText = el("p");
  var inviteYes = el("button", { type: "button", class: "primary" }, "Chat now");
  var inviteNo = el("button", { type: "button" }, "No thanks");
  invite.appendChild(inviteText); invite.appendChild(inviteYes); invite.appendChild(inviteNo);

  [header, notice, connection, form, offlineDone, chatView, after].forEach(function (n) { panel.appendChild(n); });
  [css, invite, panel, launcher].forEach(function (n) { root.appendChild(n); });

  // --- state -------------------------------------------------------------------------------
  var config = null, ws = null, attempt = 0, everOpened = false, identified = false, pingTimer = null;
  var seen = new Set(), conversation = null, pendingInvitation = null, typingTimer = null, typingSent = 0;
  var refused = false, blocked = false;
  // A socket can die without a close event (a laptop waking from sleep, a NAT dropping the
  // connection): the server answers every ping with a pong, so a socket that leaves a ping
  // unanswered for `silence` ms is given up and the widget reconnects (timed from the ping, as in
  // static/chat/socket.js, which says why). A message without an ack is resent (same client_id,
  // stored once). Tests shorten these with window.CoachlineTiming.
  var timing = Object.assign({ ping: 20000, silence: 25000, ack: 5000 }, window.CoachlineTiming || {});
  var ACK_TIMEOUT_MS = timing.ack;
  var silenceTimer = null, pingSentAt = 0;

  function showNotice(text) { notice.textContent = text || ""; notice.hidden = !text; }
  function showFormError(text) { formError.textContent = text || ""; formError.hidden = !text; }

  function setOpen(open) {
    store.open = open; persist();
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      invite.hidden = true;
      var focusable = panel.querySelector("input:not([hidden]), textarea, button.primary");
      if (!chatView.hidden) input.focus(); else if (focusable) focusable.focus();
    }
  }
  launcher.addEventListener("click", function () { setOpen(panel.hidden); });
  minimize.addEventListener("click", function () { setOpen(false); launcher.focus(); });
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { setOpen(false); launcher.focus(); }
  });

  function department(slug) {
    if (!config) return null;
    for (var i = 0; i < config.departments.length; i++) if (config.departments[i].slug === slug) return config.departments[i];
    return null;
  }

  function applyDepartment() {
    var d = department(deptSelect.value);
    var offline = blocked || (!!d && !d.available);
    var req = d ? d.require : { name: false, email: false, message: false };
    form.classList.toggle("offline", offline);
    offlineText.hidden = !offline;
    offlineText.textContent = offline ? (d ? d.offline_message : "") : "";
    var needName = req.name, needEmail = offline || req.email, needQuestion = offline || req.message;
    nameLabel.firstChild.textContent = "Your name" + (needName ? "" : " (optional)");
    emailLabel.firstChild.textContent = "E-mail" + (needEmail ? "" : " (optional)");
    questionLabel.firstChild.textContent = offline ? "Your message" : "How can we help?" + (needQuestion ? "" : " (optional)");
    nameInput.required = needName; emailInput.required = needEmail; questionInput.required = needQuestion;
    startButton.textContent = offline ? "Send message" : "Start chat";
    title.textContent = offline ? "Leave us a message" : "Chat with us";
  }
  deptSelect.addEventListener("change", applyDepartment);

  function showView(which) {
    form.hidden = which !== "form";
    offlineDone.hidden = which !== "offline-done";
    chatView.hidden = which !== "chat";
    after.hidden = which !== "after";
    if (which === "form") applyDepartment();
  }

  // --- rendering messages --------------------------------------------------------------------
  function insertOrdered(li, seq) {
    var before = null;
    log.querySelectorAll("li[data-seq]").forEach(function (n) { if (!before && Number(n.dataset.seq) > seq) before = n; });
    log.insertBefore(li, before || log.querySelector("li.pending"));
  }

  function renderMessage(m) {
    if (seen.has(m.seq)) return;
    seen.add(m.seq);
    if (m.client_id) {
      var mine = log.querySelector('li.pending[data-client-id="' + CSS.escape(m.client_id) + '"]');
      if (mine) mine.remove();
      dropOutbox(m.client_id);
    }
    var li = el("li", { class: "msg msg-" + m.role });
    li.dataset.seq = m.seq;
    var who = m.role === "visitor" ? "You" : (m.author || (m.role === "system" ? "" : "Agent"));
    if (who) li.appendChild(el("strong", {}, who + ": "));
    if (m.attachment) li.appendChild(attachmentView(m.attachment));
    else appendLinked(li, m.body);
    insertOrdered(li, m.seq);
    store.lastSeq = Math.max(store.lastSeq, m.seq); persist();
    log.scrollTop = log.scrollHeight;
  }

  function renderPending(entry, state) {
    var li = log.querySelector('li.pending[data-client-id="' + CSS.escape(entry.client_id) + '"]');
    if (!li) {
      li = el("li", { class: "msg msg-visitor pending" });
      li.dataset.clientId = entry.client_id;
      li.appendChild(el("strong", {}, "You: "));
      li.appendChild(document.createTextNode(entry.body));
      li.appendChild(el("span", { class: "state" }));
      log.appendChild(li);
    }
    li.classList.toggle("failed", state === "failed" || state === "retrying");
    var stateEl = li.querySelector(".state");
    stateEl.textContent = "";
    if (state === "retrying") {
      // No answer yet (a lost frame, a slow or broken connection): it is resent by itself with
      // the same client_id, which the server stores once. Retry only hurries it.
      stateEl.appendChild(document.createTextNode(" Not sent yet, retrying… "));
      var now = el("button", { type: "button", class: "retry" }, "Retry now");
      now.addEventListener("click", function () { entry.tries = 0; sendMessage(entry); });
      stateEl.appendChild(now);
    } else if (state === "failed") {
      stateEl.appendChild(document.createTextNode(" Not sent" + (entry.reason ? " (" + entry.reason + ")" : "") + ". "));
      var retry = el("button", { type: "button", class: "retry" }, "Retry");
      retry.addEventListener("click", function () { entry.failed = false; entry.reason = ""; entry.tries = 0; sendMessage(entry); });
      var edit = el("button", { type: "button", class: "edit" }, "Edit");
      edit.addEventListener("click", function () {
        // Nothing typed is lost: the text goes back into the composer.
        input.value = entry.body + (input.value ? "\n" + input.value : "");
        dropOutbox(entry.client_id); li.remove(); saveDraft(); input.focus();
      });
      stateEl.appendChild(retry); stateEl.appendChild(edit);
    } else {
      stateEl.textContent = state === "sent" ? " ✓ Sent" : " Sending…";
    }
    stateEl.dataset.state = state;
  }

  function dropOutbox(clientId) {
    var timer = ackTimers[clientId];
    if (timer) { window.clearTimeout(timer); delete ackTimers[clientId]; }
    store.outbox = store.outbox.filter(function (e) { return e.client_id !== clientId; }); persist();
  }
  function findOutbox(clientId) {
    for (var i = 0; i < store.outbox.length; i++) if (store.outbox[i].client_id === clientId) return store.outbox[i];
    return null;
  }

  var ackTimers = {};  // client_id -> timer waiting for the ack
  function sendMessage(entry) {
    if (!findOutbox(entry.client_id)) store.outbox.push(entry);
    persist();
    renderPending(entry, entry.failed ? "failed" : entry.tries ? "retrying" : "sending");
    if (entry.failed) return;
    send({ type: "message", body: entry.body, client_id: entry.client_id });
    window.clearTimeout(ackTimers[entry.client_id]);
    // Waits longer after each try (5, 10, 20, 30 s); a reconnect resends at once anyway.
    ackTimers[entry.client_id] = window.setTimeout(function () {
      delete ackTimers[entry.client_id];
      if (!findOutbox(entry.client_id) || entry.failed) return;
      entry.tries = (entry.tries || 0) + 1;
      sendMessage(entry);
    }, Math.min(30000, ACK_TIMEOUT_MS * Math.pow(2, entry.tries || 0)));
  }

  // --- files ---------------------------------------------------------------------------------
  function humanSize(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1048576) return Math.round(n / 1024) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }
  function attachmentView(a) {
    // a.url is a path on the chat server, not on the host page's site.
    var url = new URL(a.url, BASE).href;
    var box = el("span", { class: "attachment" });
    if (a.is_image) {
      var imgLink = el("a", { href: url, target: "_blank", rel: "noopener" });
      imgLink.appendChild(el("img", { src: url, alt: a.name }));
      box.appendChild(imgLink);
    }
    box.appendChild(el("a", { href: url, target: "_blank", rel: "noopener" }, a.name + " (" + humanSize(a.size) + ")"));
    return box;
  }
  function renderUpload(clientId, file, state, reason) {
    var li = log.querySelector('li.pending[data-client-id="' + CSS.escape(clientId) + '"]');
    if (!li) {
      li = el("li", { class: "msg msg-visitor pending upload" });
      li.dataset.clientId = clientId;
      li.appendChild(el("strong", {}, "You: "));
      li.appendChild(document.createTextNode(file.name + " (" + humanSize(file.size) + ")"));
      li.appendChild(el("span", { class: "state" }));
      log.appendChild(li);
    }
    li.classList.toggle("failed", state === "failed");
    var stateEl = li.querySelector(".state");
    stateEl.textContent = "";
    if (state === "failed") {
      stateEl.appendChild(document.createTextNode(" Not sent (" + reason + "). "));
      var retry = el("button", { type: "button", class: "retry" }, "Retry");
      retry.addEventListener("click", function () { upload(clientId, file); });
      var remove = el("button", { type: "button", class: "remove" }, "Remove");
      remove.addEventListener("click", function () { li.remove(); });
      stateEl.appendChild(retry); stateEl.appendChild(remove);
    } else {
      stateEl.textContent = state === "sent" ? " ✓ Sent" : " Sending…";
    }
    stateEl.dataset.state = state;
    log.scrollTop = log.scrollHeight;
  }
  function upload(clientId, file) {
    renderUpload(clientId, file, "sending");
    var body = new FormData();
    body.append("token", store.token || "");
    body.append("client_id", clientId);  // the same on a retry: the server stores the file once
    body.append("file", file);
    fetch(BASE + "/chat/attachments/", { method: "POST", body: body, credentials: "omit" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (!res.ok) { renderUpload(clientId, file, "failed", res.body.error ? res.body.error.message : "error"); return; }
        // The message frame replaces this line; after a lost frame the next sync brings it.
        var pendingLine = log.querySelector('li.pending[data-client-id="' + CSS.escape(clientId) + '"]');
        if (pendingLine) renderUpload(clientId, file, "sent");
      }, function () { renderUpload(clientId, file, "failed", "network error"); });
  }
  function chooseFile(file) {
    var conf = (config && config.attachments) || { enabled: false };
    var ext = (file.name.split(".").pop() || "").toLowerCase();
    if (!conf.enabled) { showNotice("Sending files is switched off."); return; }
    if (file.name.indexOf(".") < 0 || conf.extensions.indexOf(ext) < 0) {
      showNotice("Files of this type cannot be sent. Allowed: " + conf.extensions.join(", ") + "."); return;
    }
    if (file.size > conf.max_bytes) {
      showNotice("The file is too large (" + humanSize(file.size) + "); at most " + humanSize(conf.max_bytes) + "."); return;
    }
    showNotice("");
    upload(uuid(), file);
  }
  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    if (fileInput.files[0]) chooseFile(fileInput.files[0]);
    fileInput.value = "";
  });

  function agentCardFor(a) {
    agentCard.textContent = "";
    if (!a) { agentCard.hidden = true; return; }
    agentCard.hidden = false;
    if (a.avatar_url) {
      agentCard.appendChild(el("img", { class: "avatar", alt: "", src: new URL(a.avatar_url, BASE).href }));
    } else {
      agentCard.appendChild(el("span", { class: "avatar initials", "aria-hidden": "true" }, a.initials || "?"));
    }
    agentCard.appendChild(el("span", { class: "agent-name" }, a.name));
  }

  function switchTo(conversationId) {
    if (store.conversationId === conversationId) return;
    // A different chat (a new one, or another tab started one): its numbering starts afresh.
    log.textContent = ""; seen.clear(); store.lastSeq = 0;
    store.conversationId = conversationId; persist();
  }

  function showConversation(c) {
    if (!c) return;
    switchTo(c.conversation_id);
    conversation = c;
    var open = c.status === "queued" || c.status === "offered" || c.status === "active";
    if (open) {
      if (log.parentNode !== chatView) chatView.insertBefore(log, typingLine);
      showView("chat");
      agentCardFor(c.status === "active" ? c.agent : null);
      if (c.status === "active" && c.agent) statusLine.textContent = "You are chatting with " + c.agent.name + ".";
      else if (c.queue_position) statusLine.textContent = queueText(c.queue_position);
      else statusLine.textContent = "Connecting you to an agent…";
    } else {
      endedView(c);
    }
  }
  function queueText(position) {
    return position === 1 ? "You are next in line." : "You are number " + position + " in line.";
  }

  function endedView(c) {
    showView("after");
    typingLine.hidden = true;
    var done = store.surveyed.indexOf(c.conversation_id) >= 0;
    survey.hidden = done || c.status !== "ended";
    surveyDone.hidden = !done;
    if (done) surveyDone.textContent = "Thank you for your feedback.";
    // The chat log stays readable above the survey.
    after.insertBefore(log, after.firstChild);
    if (!transcriptEmail.value) transcriptEmail.value = emailInput.value || "";
  }

  // --- the socket ------------------------------------------------------------------------
  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN && (identified || frame.type === "hello" || frame.type === "ping")) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    if (refused) return;
    var socket = new WebSocket(BASE.replace(/^http/, "ws") + "/ws/visitor/");
    ws = socket; identified = false;
    connection.textContent = attempt ? "Reconnecting…" : "";
    socket.onopen = function () {
      everOpened = true; attempt = 0; connection.textContent = "";
      socket.send(JSON.stringify({ type: "hello", token: store.token, last_seq: store.lastSeq,
        conversation_id: store.conversationId,
        page_url: window.location.href.slice(0, 2000), referrer: document.referrer ? document.referrer.slice(0, 2000) : null }));
      pingSentAt = 0;
      pingTimer = window.setInterval(function () {
        if (send({ type: "ping" }) && !pingSentAt) pingSentAt = Date.now();
      }, timing.ping);
      silenceTimer = window.setInterval(function () {
        if (pingSentAt && Date.now() - pingSentAt > timing.silence) giveUp(socket);
      }, Math.min(5000, timing.silence / 3));
    };
    socket.onmessage = function (event) {
      pingSentAt = 0;
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = lost;
  }

  // A silent socket: stop listening to it and reconnect now, without waiting for a closing
  // handshake the dead link never completes.
  function giveUp(socket) {
    if (socket !== ws) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    try { socket.close(); } catch (e) { /* already closing */ }
    lost();
  }

  function lost() {
    window.clearInterval(pingTimer);
    window.clearInterval(silenceTimer);
    identified = false;
    if (!everOpened && attempt >= 2) {
      // The handshake never succeeded: most likely this site is not an allowed origin.
      showNotice("Chat is not available on this site right now.");
    }
    connection.textContent = "Reconnecting…";
    window.setTimeout(connect, backoff(attempt));
    attempt += 1;
  }

  // Exponential backoff with full jitter, capped at 5 s: when a server drops every socket at once
  // (a restart, or code 4503 after its Redis came back) the visitors do not return as one herd,
  // and each is back within seconds of the server. Same as static/chat/socket.js.
  function backoff(n) { return 250 + Math.random() * Math.min(5000, 500 * Math.pow(2, n)); }

  // The server could not store a message (error "internal", e.g. its database is down): the
  // outbox is sent again after a growing pause, on the same socket, with the same client_ids.
  var retryTimer = null, retryAttempt = 0;
  function retryOutboxLater() {
    if (retryTimer) return;
    retryTimer = window.setTimeout(function () {
      retryTimer = null;
      store.outbox.forEach(function (e) { if (!e.failed) send({ type: "message", body: e.body, client_id: e.client_id }); });
    }, backoff(retryAttempt));
    retryAttempt += 1;
  }

  var formPending = null;  // which form waits for the server's answer: "start", "offline", "survey", "transcript"

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        identified = true;
        if (!!f.blocked !== blocked) { blocked = !!f.blocked; applyDepartment(); }
        if (f.token) { store.token = f.token; store.lastSeq = 0; store.conversationId = null; persist(); }
        if (f.visitor) {
          if (!nameInput.value) nameInput.value = f.visitor.name || "";
          if (!emailInput.value) emailInput.value = f.visitor.email || "";
        }
        if (f.conversation) {
          // After a reload the log is empty, and another tab may have started a different chat:
          // then fetch the whole chat, not just what came after the stored last_seq.
          var needsAll = log.querySelectorAll("li[data-seq]").length === 0 ||
            f.conversation.conversation_id !== store.conversationId;
          showConversation(f.conversation);
          if (needsAll && f.conversation.last_seq > 0) send({ type: "sync", last_seq: 0 });
        } else {
          conversation = null;
          if (store.conversationId) { store.conversationId = null; store.lastSeq = 0; persist(); }
          if (chatView.hidden && after.hidden && offlineDone.hidden) showView("form");
        }
        store.outbox.forEach(function (e) { if (!e.failed) sendMessage(e); });
        break;
      case "history":
        switchTo(f.conversation_id);
        f.messages.forEach(renderMessage);
        break;
      case "conversation":
        if (formPending === "start") { formPending = null; questionInput.value = ""; }
        showConversation(f);
        break;
      case "queue":
        if (conversation && f.conversation_id === conversation.conversation_id) statusLine.textContent = queueText(f.position);
        break;
      case "message":
        renderMessage(f);
        if (f.role !== "visitor") typingLine.hidden = true;
        break;
      case "ack":
        var entry = findOutbox(f.client_id);
        if (entry) { renderPending(entry, "sent"); dropOutbox(f.client_id); retryAttempt = 0; }
        // The message itself normally follows its ack at once; if that frame was lost (or this
        // was the answer to a resend, which is not broadcast again), fetch it.
        window.setTimeout(function () {
          if (!seen.has(f.seq) && conversation && f.conversation_id === conversation.conversation_id) {
            send({ type: "sync", last_seq: Math.max(0, Math.min(store.lastSeq, f.seq - 1)) });
          }
        }, 2000);
        break;
      case "typing":
        if (f.role === "visitor") break;
        typingLine.textContent = (conversation && conversation.agent ? conversation.agent.name : "The agent") + " is typing…";
        typingLine.hidden = !f.active;
        window.clearTimeout(typingTimer);
        if (f.active) typingTimer = window.setTimeout(function () { typingLine.hidden = true; }, 6000);
        break;
      case "offline_received":
        formPending = null;
        questionInput.value = "";
        offlineDone.textContent = "Thank you! We received your message and sent a confirmation to " + f.email + ".";
        showView("offline-done");
        break;
      case "survey_received":
        formPending = null;
        if (store.surveyed.indexOf(f.conversation_id) < 0) store.surveyed.push(f.conversation_id);
        persist();
        survey.hidden = true; surveyDone.hidden = false; surveyDone.textContent = "Thank you for your feedback.";
        break;
      case "transcript_sent":
        formPending = null;
        transcriptDone.hidden = false; transcriptDone.textContent = "The transcript is on its way to " + f.email + ".";
        break;
      case "invitation":
        if (f.invitation_id && !conversation && panel.hidden) {
          var v = visit();
          if (v.invited.indexOf(f.rule_id) < 0) { v.invited.push(f.rule_id); persist(); }
          pendingInvitation = f;
          inviteText.textContent = f.message;
          invite.hidden = false;
        }
        break;
      case "error":
        onError(f);
        break;
    }
  }

  function onError(f) {
    var entry = f.ref ? findOutbox(f.ref) : null;
    if (entry) {
      if (f.code === "internal") { retryOutboxLater(); return; }  // kept; sent again after a pause
      entry.failed = true; entry.reason = f.message; persist();
      renderPending(entry, "failed");
      return;
    }
    if (f.code === "invalid_token") {
      store.token = null; store.lastSeq = 0; store.conversationId = null; persist();
      send({ type: "hello", token: null, last_seq: 0 });
      return;
    }
    if (f.code === "blocked") {
      // This visitor may leave a message but not chat: the form becomes the offline form, with
      // everything typed still in it.
      blocked = true; applyDepartment();
      showFormError(f.message); formPending = null; return;
    }
    if (formPending === "start" || formPending === "offline") { showFormError(f.message); formPending = null; return; }
    if (formPending === "survey") { showNotice(f.message); formPending = null; return; }
    if (formPending === "transcript") { transcriptDone.hidden = false; transcriptDone.textContent = f.message; formPending = null; return; }
    if (f.code === "already_open") return;
    showNotice(f.message);
  }

  // --- user actions ---------------------------------------------------------------------
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    showFormError("");
    var d = department(deptSelect.value);
    var missing = [nameInput, emailInput, questionInput].filter(function (i) { return i.required && !i.value.trim(); });
    if (missing.length) {
      showFormError("Please fill in: " + missing.map(function (i) { return i.parentNode.firstChild.textContent; }).join(", ") + ".");
      missing[0].focus();
      return;
    }
    if (!identified) { showFormError("Still connecting… please try again in a moment."); return; }
    if (blocked || (d && !d.available)) {
      formPending = "offline";
      send({ type: "offline", department: deptSelect.value, name: nameInput.value, email: emailInput.value, message: questionInput.value });
      return;
    }
    formPending = "start";
    var frame = { type: "start", department: deptSelect.value, name: nameInput.value, email: emailInput.value };
    if (questionInput.value.trim()) { frame.message = questionInput.value; frame.client_id = uuid(); }
    if (store.invitationId) frame.invitation_id = store.invitationId;
    store.invitationId = null; persist();
    send(frame);
  });

  function saveDraft() { store.draft = input.value; persist(); }
  input.value = store.draft;
  var typingStop = null;
  input.addEventListener("input", function () {
    saveDraft();
    var now = Date.now();
    if (now - typingSent > 3000) { typingSent = now; send({ type: "typing", active: true }); }
    // A pause ends "is typing…" on the agent's side, sent or not.
    window.clearTimeout(typingStop);
    typingStop = window.setTimeout(function () { typingSent = 0; send({ type: "typing", active: false }); }, 3000);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); composer.requestSubmit(); }
  });
  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    sendMessage({ client_id: uuid(), body: text });
    input.value = ""; saveDraft();
    window.clearTimeout(typingStop);
    typingSent = 0; send({ type: "typing", active: false });
  });
  endButton.addEventListener("click", function () { send({ type: "end" }); });
  newChat.addEventListener("click", function () {
    store.conversationId = null; store.lastSeq = 0; persist();
    conversation = null; log.textContent = ""; seen.clear();
    chatView.insertBefore(log, typingLine);
    transcriptDone.hidden = true; surveyDone.hidden = true;
    loadConfig().then(function () { showView("form"); });
  });
  survey.addEventListener("submit", function (e) {
    e.preventDefault();
    var checked = survey.querySelector('input[name="rating"]:checked');
    if (!checked) { showNotice("Please choose a rating from 1 to 5."); return; }
    showNotice("");
    var answers = {};
    extraQuestions.querySelectorAll("textarea").forEach(function (t) { if (t.value.trim()) answers[t.name] = t.value; });
    formPending = "survey";
    send({ type: "survey", conversation_id: store.conversationId, rating: Number(checked.value), comment: commentInput.value, answers: answers });
  });
  transcriptForm.addEventListener("submit", function (e) {
    e.preventDefault();
    formPending = "transcript";
    send({ type: "transcript", conversation_id: store.conversationId, email: transcriptEmail.value });
  });
  inviteYes.addEventListener("click", function () {
    if (!pendingInvitation) return;
    send({ type: "invite_reply", invitation_id: pendingInvitation.invitation_id, accepted: true });
    store.invitationId = pendingInvitation.invitation_id; persist();
    if (department(pendingInvitation.department)) deptSelect.value = pendingInvitation.department;
    pendingInvitation = null; invite.hidden = true;
    showView("form"); setOpen(true);
  });
  inviteNo.addEventListener("click", function () {
    if (!pendingInvitation) return;
    send({ type: "invite_reply", invitation_id: pendingInvitation.invitation_id, accepted: false });
    pendingInvitation = null; invite.hidden = true; launcher.focus();
  });

  // --- proactive invitations: the rules come with the configuration ------------------
  function wildcard(pattern) {
    var rx = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + rx + "$");
  }
  // "Seconds on the site" count from the visit's first page, across page loads: the visit is
  // kept with the rest in localStorage and ends after 30 minutes without a page of the site open
  // (chat/widget.py VISIT_SECONDS). A rule invites once per visit.
  var VISIT_GAP_MS = 30 * 60 * 1000;
  function visit() {
    var now = Date.now();
    if (!store.visit || !(now - store.visit.seen <= VISIT_GAP_MS)) store.visit = { started: now, seen: now, invited: [] };
    store.visit.seen = now;
    store.visit.invited = store.visit.invited || [];
    persist();
    return store.visit;
  }
  visit();
  window.setInterval(visit, 5000);
  window.addEventListener("pagehide", visit);
  function scheduleInvitations() {
    (config.invitation_rules || []).forEach(function (rule) {
      if (!wildcard(rule.url_pattern).test(window.location.href)) return;
      if (visit().invited.indexOf(rule.id) >= 0) return;
      var onSite = (Date.now() - visit().started) / 1000;
      window.setTimeout(function ask() {
        if (conversation || !panel.hidden || blocked) return;
        if (!identified) { window.setTimeout(ask, 1000); return; }  // the socket is still opening
        send({ type: "invite_request", rule_id: rule.id, page_url: window.location.href.slice(0, 2000) });
      }, Math.max(0, rule.seconds_on_page - onSite) * 1000);
    });
  }

  // --- start ------------------------------------------------------------------------------
  function loadConfig() {
    return fetch(BASE + "/widget/config/", { credentials: "omit" })
      .then(function (r) { return r.json(); })
      .then(function (c) {
        if (!c.allowed) {
          refused = true;
          showView("none");
          showNotice(c.message || "Chat is not available on this site.");
          return;
        }
        config = c;
        var current = deptSelect.value || WANTED_DEPARTMENT;
        deptSelect.textContent = "";
        c.departments.forEach(function (d) { deptSelect.appendChild(new Option(d.name, d.slug)); });
        if (department(current)) deptSelect.value = current;
        var files = c.attachments || { enabled: false, extensions: [] };
        attachButton.hidden = !files.enabled;
        fileInput.setAttribute("accept", files.extensions.map(function (e) { return "." + e; }).join(","));
        extraQuestions.textContent = "";
        (c.survey_questions || []).forEach(function (q) {
          extraQuestions.appendChild(field(q.text + " (optional)", el("textarea", { name: q.key, rows: "2", maxlength: "2000" })));
        });
        applyDepartment();
      });
  }

  function start() {
    document.body.appendChild(host);
    showView("none");
    if (store.open) setOpen(true);
    loadConfig().then(function () {
      if (refused) return;
      connect();
      scheduleInvitations();
    }, function () {
      showNotice("Chat is unavailable right now. Please try again later.");
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
