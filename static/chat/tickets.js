// Tickets from the agent workspace: adds a "Create ticket" button to every chat card that
// agent.js draws (article.chat[data-conversation]) and links to the tickets page. Kept out of
// agent.js so the workspace and the tickets can change independently.
(function () {
  "use strict";
  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
    if (m) return decodeURIComponent(m[1]);
    var input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function addButton(card) {
    if (card.querySelector(".ticket-tools")) return;
    var id = card.dataset.conversation;
    if (!id) return;
    var box = document.createElement("div");
    box.className = "ticket-tools";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "create-ticket";
    button.textContent = "Create ticket";
    var result = document.createElement("span");
    result.className = "ticket-result";
    result.setAttribute("role", "status");
    button.addEventListener("click", function () {
      button.disabled = true;
      result.textContent = "Creating…";
      var body = new URLSearchParams({ conversation_id: id });
      fetch("/tickets/from-chat/", {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() }
      }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
        .then(function (res) {
          button.disabled = false;
          result.textContent = "";
          if (!res.ok) { result.textContent = res.body.error || "Could not create the ticket."; return; }
          var link = document.createElement("a");
          link.href = res.body.url;
          link.target = "_blank";
          link.textContent = "Ticket " + res.body.ticket_id;
          result.appendChild(link);
        }, function () { button.disabled = false; result.textContent = "Network error; try again."; });
    });
    box.appendChild(button);
    box.appendChild(result);
    card.appendChild(box);
  }

  function scan() { document.querySelectorAll("article.chat[data-conversation]").forEach(addButton); }
  var chats = document.getElementById("chats");
  if (!chats) return;
  new MutationObserver(scan).observe(chats, { childList: true });
  scan();
})();
