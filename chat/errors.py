"""Errors that services raise and consumers turn into documented error frames."""

from __future__ import annotations


class ChatError(Exception):
    """A refusal the client can act on; `code` is stable and listed in docs/protocol.md."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(ChatError):
    code = "invalid"


class NotFound(ChatError):
    """Also used for "not yours": a client cannot tell the two apart."""

    code = "not_found"

    def __init__(self, message: str = "No such conversation.") -> None:
        super().__init__(message)


class Conflict(ChatError):
    code = "conflict"
