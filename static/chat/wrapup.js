// The agent workspace's files, closing and blocking, on top of agent.js (its hooks in
// window.Coachline.workspace): send a file in a chat and show files as links or previews; after
// a chat ends, close it with a disposition (resolved, follow-up ticket, spam); block a visitor;
// tell the agent about a ticket given to it. All text is set with textContent.
(function () {
  "use strict";
  var ws = window.Coachline && window.Coachline.workspace;
  if (!ws) return;

  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
    if (m) return decodeURIComponent(m[1]);
    var input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }
  function uuid() { return window.Coachline.uuid ? window.Coachline.uuid() : String(Date.now()) + Math.random(); }
  function size(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1048576) return Math.round(n / 1024) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }
  function note(text, link) {
    var li = document.createElement("li");
    li.className = "wrapup-note";
    li.appendChild(document.createTextNode(text + " "));
    if (link) {
      var a = document.createElement("a");
      a.href = link.url; a.target = "_blank"; a.rel = "noopener"; a.textContent = link.text;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" "));
    }
    var dismiss = document.createElement("button");
    dismiss.type = "button"; dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", function () { li.remove(); });
    li.appendChild(dismiss);
    document.getElementById("notifications").appendChild(li);
  }

  // --- files in messages ------------------------------------------------------------------
  ws.on("message", function (li, m) {
    var a = m.attachment;
    if (!a) return;
    // The body says "[Attachment: name]"; the line shows the file instead.
    Array.prototype.slice.call(li.childNodes).forEach(function (n) { if (n.nodeType === 3) li.removeChild(n); });
    var box = document.createElement("span");
    box.className = "attachment";
    var link = document.createElement("a");
    link.href = a.url; link.target = "_blank"; link.rel = "noopener";
    link.textContent = a.name + " (" + size(a.size) + ")";
    if (a.is_image) {
      var img = document.createElement("img");
      img.src = a.url; img.alt = a.name; img.className = "preview"; img.loading = "lazy";
      var imgLink = link.cloneNode(false);
      imgLink.appendChild(img);
      box.appendChild(imgLink);
      box.appendChild(document.createElement("br"));
    }
    box.appendChild(link);
    li.insertBefore(box, li.querySelector(".canned-tag"));
  });

  // --- per chat card: file upload, block, close -------------------------------------------
  function wire(entry, id) {
    if (entry.wrapupWired) return;
    entry.wrapupWired = true;
    var el = entry.el;
    var form = el.querySelector("form.attach");
    var fileInput = el.querySelector(".file-input");
    var status = el.querySelector(".upload-status");
    var pendingId = null;  // one client_id per chosen file: a retry is stored once
    fileInput.addEventListener("change", function () { pendingId = null; status.textContent = ""; });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = fileInput.files[0];
      if (!file) { status.textContent = "Choose a file first."; return; }
      pendingId = pendingId || uuid();
      var internal = entry.helping || el.querySelector(".internal").checked;
      var body = new FormData();
      body.append("conversation_id", id);
      body.append("client_id", pendingId);
      body.append("visibility", internal ? "internal" : "public");
      body.append("file", file);
      status.textContent = "Sending " + file.name + "…";
      form.querySelector("button").disabled = true;
      fetch("/agent/attachments/", { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
        .then(function (res) {
          form.querySelector("button").disabled = false;
          if (!res.ok) {
            // The file stays chosen: fix the cause or press Upload file again.
            status.textContent = (res.body.error && res.body.error.message) || "The file was not sent.";
            return;
          }
          status.textContent = "";
          fileInput.value = ""; pendingId = null;
        }, function () {
          form.querySelector("button").disabled = false;
          status.textContent = "Network error: the file was not sent. Press Upload file to try again.";
        });
    });

    el.querySelector("button.block").addEventListener("click", function () {
      var by = el.querySelector(".block-by").value;
      var what = by === "ip" ? "this IP address" : "this visitor";
      if (!window.confirm("Block " + what + " and end the chat?")) return;
      ws.send({ type: "block", conversation_id: id, by: by, reason: el.querySelector(".block-reason").value });
    });
    el.querySelectorAll(".close-tools button[data-disposition]").forEach(function (b) {
      b.addEventListener("click", function () {
        ws.send({ type: "close", conversation_id: id, disposition: b.dataset.disposition });
      });
    });
    el.querySelector(".dismiss").addEventListener("click", function () { ws.removeChat(id); });
  }

  ws.on("chat", function (entry, c) {
    var id = c.conversation_id;
    wire(entry, id);
    var status = entry.status;
    var ended = status === "ended";
    var gone = ["missed", "abandoned", "gone"].indexOf(status) >= 0;
    entry.el.querySelector(".close-tools").hidden = !ended || entry.helping;
    entry.el.querySelector(".dismiss").hidden = !(gone || (ended && entry.helping));
    entry.el.querySelector(".block-tools").hidden = entry.helping || !(status === "active" || ended);
    entry.el.querySelector("form.attach").hidden = status !== "active";
  });

  ws.on("frame", function (f) {
    if (f.type === "closed") {
      ws.removeChat(f.conversation_id);
      if (f.ticket_id) note("Chat closed with a follow-up ticket:", { url: f.ticket_url, text: "Ticket " + f.ticket_id });
    } else if (f.type === "blocked") {
      note(f.by === "ip" ? "The visitor's IP address is blocked." : "The visitor is blocked.");
    } else if (f.type === "ticket_assigned") {
      note((f.by || "Someone") + " gave you a ticket:", { url: f.url, text: "Ticket " + f.ticket_id + ": " + f.subject });
      ws.alertUser("Ticket " + f.ticket_id + " is yours", f.subject);
    }
  });
})();
