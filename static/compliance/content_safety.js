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
