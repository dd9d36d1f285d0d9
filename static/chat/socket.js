// A WebSocket that reconnects with backoff and jitter and never loses what the user sent:
// unacknowledged messages stay in an outbox and are resent with the same client_id after a
// reconnect (the server stores each client_id once). See docs/protocol.md.
(function () {
  "use strict";

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function ChatSocket(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.outbox = new Map(); // client_id -> frame, until acknowledged
    this.attempt = 0;
    this.ws = null;
    this.closedByUs = false;
    this.pingTimer = null;
  }

  ChatSocket.prototype.url = function () {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var base = this.handlers.baseUrl ? this.handlers.baseUrl.replace(/^http/, "ws") : scheme + window.location.host;
    return base + this.path;
  };

  ChatSocket.prototype.connect = function () {
    var self = this;
    var ws = new WebSocket(this.url());
    this.ws = ws;
    this.handlers.onStatus && this.handlers.onStatus(this.attempt ? "reconnecting" : "connecting");
    ws.onopen = function () {
      self.attempt = 0;
      self.handlers.onStatus && self.handlers.onStatus("connected");
      self.handlers.onOpen && self.handlers.onOpen();
      self.pingTimer = window.setInterval(function () { self.sendRaw({ type: "ping" }); }, 20000);
    };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "ack" && frame.client_id) { self.outbox.delete(frame.client_id); self.retryAttempt = 0; }
      if (frame.type === "error" && frame.ref && self.outbox.has(frame.ref)) {
        // "internal": the server could not store it (its database is down, say): send the
        // outbox again after a pause. Anything else is refused for good (too long, not yours...).
        if (frame.code === "internal") self.retryLater();
        else self.outbox.delete(frame.ref);
      }
      self.handlers.onFrame(frame);
    };
    ws.onclose = function (event) {
      window.clearInterval(self.pingTimer);
      if (self.closedByUs) return;
      if (event.code === 4401) {
        // The session ended (logout, idle, password or role change): log in again.
        window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      self.handlers.onStatus && self.handlers.onStatus("reconnecting");
      window.setTimeout(function () { self.connect(); }, backoff(self.attempt));
      self.attempt += 1;
    };
  };

  // Exponential backoff with full jitter, capped at 5 s: a server that drops every socket at
  // once (a restart, code 4503 after a Redis outage) is not met by a herd, and a client is back
  // within seconds of the server.
  function backoff(attempt) {
    return 250 + Math.random() * Math.min(5000, 500 * Math.pow(2, attempt));
  }

  ChatSocket.prototype.retryLater = function () {
    var self = this;
    if (this.retryTimer) return;
    this.retryTimer = window.setTimeout(function () {
      self.retryTimer = null;
      self.flushOutbox();
    }, backoff(this.retryAttempt || 0));
    this.retryAttempt = (this.retryAttempt || 0) + 1;
  };

  ChatSocket.prototype.sendRaw = function (frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  };

  // Frames that carry a client_id are kept until the server acknowledges them.
  ChatSocket.prototype.sendReliable = function (frame) {
    frame.client_id = frame.client_id || uuid();
    this.outbox.set(frame.client_id, frame);
    this.sendRaw(frame);
    return frame.client_id;
  };

  ChatSocket.prototype.flushOutbox = function () {
    var self = this;
    this.outbox.forEach(function (frame) { self.sendRaw(frame); });
  };

  ChatSocket.prototype.close = function () {
    this.closedByUs = true;
    if (this.ws) this.ws.close();
  };

  window.Coachline = window.Coachline || {};
  window.Coachline.ChatSocket = ChatSocket;
  window.Coachline.uuid = uuid;
  window.Coachline.backoff = backoff;
})();
