// Chat text with its web addresses made clickable, safely: the text goes in as text nodes (never
// HTML), and only http:// and https:// addresses become links, so "javascript:..." or "data:..."
// stay plain text. Links open in a new tab without access to this page (noopener, noreferrer).
window.CoachlineText = (function () {
  "use strict";
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  // Punctuation that ends a sentence is not part of the address ("see https://x.example/a.").
  var TRAILING = /[.,;:!?)\]]+$/;

  function safeHref(text) {
    try {
      var url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function appendLinked(parent, text) {
    var last = 0;
    text.replace(URL_RE, function (match, offset) {
      var address = match.replace(TRAILING, "");
      var href = safeHref(address);
      if (!href) return match;
      if (offset > last) parent.appendChild(document.createTextNode(text.slice(last, offset)));
      var a = document.createElement("a");
      a.href = href;
      a.textContent = address;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      parent.appendChild(a);
      last = offset + address.length;
      return match;
    });
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  return { appendLinked: appendLinked };
})();

// Content safety: when the administrator blocks copy and paste for this page, chat text cannot
// be copied, cut, dragged out of or pasted into the chats. A deterrent, not a guarantee:
// screenshots, the page source and developer tools still show the text.
(function () {
  "use strict";
  var config = document.getElementById("content-safety");
  if (!config || config.dataset.blockCopy !== "true") return;
  document.body.classList.add("content-safety-no-copy");

  var CHAT_AREAS = ".chat, #chat";

  function inChat(node) {
    var el = node && node.nodeType === 1 ? node : node && node.parentElement;
    return Boolean(el && el.closest && el.closest(CHAT_AREAS));
  }

  function touchesChat(event) {
    if (inChat(event.target)) return true;
    var selection = window.getSelection && window.getSelection();
    return Boolean(selection && selection.rangeCount && (inChat(selection.anchorNode) || inChat(selection.focusNode)));
  }

  ["copy", "cut", "paste", "dragstart", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (touchesChat(event)) event.preventDefault();
    }, true);
  });
})();
