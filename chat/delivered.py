"""What one socket is known to hold of a conversation, so that a resync sends only the rest.

After a channel-layer outage (chat/layer_watch.py) the live frames published meanwhile are lost,
and each visitor socket is sent, on the same connection, the messages after the last sequence
number up to which it got everything: the history it was sent (which starts where the client
said it stood, or at 0) and the live messages after it. A live message that arrives after a gap
(two processes publish in commit order, which is not always seq order) is kept aside until the
gap closes, so the mark never passes a message the socket did not get.
"""

from __future__ import annotations


class Delivered:
    """Per conversation: the highest seq n such that every message 1..n went to this socket."""

    def __init__(self) -> None:
        self._upto: dict[int, int] = {}
        self._ahead: dict[int, set[int]] = {}

    def upto(self, conversation_id: int) -> int:
        return self._upto.get(conversation_id, 0)

    def history(self, conversation_id: int, *, after_seq: int, last_seq: int | None) -> None:
        """A history page went out: the client held everything up to `after_seq` (its own word in
        hello or sync, or 0), and now everything up to `last_seq` (None: the page was empty)."""
        self._advance(conversation_id, max(after_seq, last_seq or 0))

    def history_frame(self, frame: dict, *, after_seq: int) -> None:
        """`history` for a history frame as sent (docs/protocol.md): its chat and its last seq."""
        messages = frame["messages"]
        self.history(frame["conversation_id"], after_seq=after_seq, last_seq=messages[-1]["seq"] if messages else None)

    def live(self, conversation_id: int, seq: int) -> None:
        upto = self.upto(conversation_id)
        if seq == upto + 1:
            self._advance(conversation_id, seq)
        elif seq > upto + 1:
            self._ahead.setdefault(conversation_id, set()).add(seq)

    def _advance(self, conversation_id: int, seq: int) -> None:
        upto = max(self.upto(conversation_id), seq)
        ahead = self._ahead.pop(conversation_id, set())
        while upto + 1 in ahead:
            upto += 1
        if rest := {s for s in ahead if s > upto}:
            self._ahead[conversation_id] = rest
        self._upto[conversation_id] = upto
