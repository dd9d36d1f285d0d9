// A WebSocket that reconnects with backoff and jitter and never loses what the user sent:
// unacknowledged messages stay in an outbox and are resent with the same client_id after a
// reconnect (the server stores each client_id once). See docs/protocol.md.
(function () {
  "use strict";

  // A socket can die without a close event: a laptop waking from sleep, a NAT or proxy dropping
  // the connection. The page would say "connected" while nothing arrives and a sent message
  // waits for its ack for good. The server answers every ping with a pong, so a socket that
  // leaves a ping unanswered for `silence` ms is given up and the page reconnects; and a message
  // not acknowledged after `ack` ms is sent again (same client_id: stored once). Timed from the
  // ping, not from the last frame heard: a hidden tab's timers may fire only once a minute, and
  // a quiet chat must not look dead then. Tests shorten these by setting window.CoachlineTiming
  // before the page's scripts run.
  var timing = Object.assign({ ping: 20000, silence: 25000, ack: 10000 }, window.CoachlineTiming || {});

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
    this.pingSentAt = 0; // the oldest ping not yet answered (any frame answers it)
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
      self.pingSentAt = 0;
      self.handlers.onStatus && self.handlers.onStatus("connected");
      self.handlers.onOpen && self.handlers.onOpen();
      self.pingTimer = window.setInterval(function () {
        if (self.sendRaw({ type: "ping" }) && !self.pingSentAt) self.pingSentAt = Date.now();
      }, timing.ping);
      self.silenceTimer = window.setInterval(function () {
        if (self.pingSentAt && Date.now() - self.pingSentAt > timing.silence) self.giveUp(ws);
      }, Math.min(5000, timing.silence / 3));
    };
    ws.onmessage = function (event) {
      self.pingSentAt = 0;
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
    ws.onclose = function (event) { self.lost(event.code); };
  };

  ChatSocket.prototype.lost = function (code) {
    window.clearInterval(this.pingTimer);
    window.clearInterval(this.silenceTimer);
    if (this.closedByUs) return;
    if (code === 4401) {
      // The session ended (logout, idle, password or role change): log in again.
      window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
      return;
    }
    var self = this;
    this.handlers.onStatus && this.handlers.onStatus("reconnecting");
    window.setTimeout(function () { self.connect(); }, backoff(this.attempt));
    this.attempt += 1;
  };

  // A silent socket: stop listening to it and reconnect now. Its close event could come only
  // after a closing handshake that a dead link never completes.
  ChatSocket.prototype.giveUp = function (ws) {
    if (ws !== this.ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try { ws.close(); } catch (e) { /* already closing */ }
    this.lost(1006);
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
    this.awaitAck(frame.client_id, 0);
    return frame.client_id;
  };

  // Not acknowledged in time: sent again on the socket there is, waiting longer after each try
  // (10, 20, 30 s...). A reconnection resends the whole outbox at once anyway.
  ChatSocket.prototype.awaitAck = function (clientId, tries) {
    var self = this;
    window.setTimeout(function () {
      var frame = self.outbox.get(clientId);
      if (!frame) return;
      self.sendRaw(frame);
      self.awaitAck(clientId, tries + 1);
    }, Math.min(30000, timing.ack * Math.pow(2, tries)));
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
