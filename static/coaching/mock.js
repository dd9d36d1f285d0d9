// A mock chat: this window plays the visitor of the training chat just started. Runs before
// visitor.js, which then says hello with this visitor token and shows the chat.
(function () {
  "use strict";
  var el = document.getElementById("mock");
  if (el && el.dataset.token) window.localStorage.setItem("coachline.visitor.token", el.dataset.token);
})();
