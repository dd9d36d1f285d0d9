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


def outage_of(exc: BaseException) -> str | None:
    """Which dependency an exception says is down ("database", "channel layer"), or None for a bug.

    An outage is answered with the retryable `internal` error (or, while a socket is being set
    up, close code 4503) and one log line; a bug keeps its traceback."""
    from django.db import DatabaseError, InterfaceError, OperationalError

    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # the embedded default runs without redis
        RedisConnectionError = RedisTimeoutError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, OperationalError | InterfaceError):
        return "database"
    try:  # the message path on the event loop (chat/message_fast_path.py) uses psycopg directly
        import psycopg
    except ImportError:
        pass
    else:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return "database"
    if isinstance(exc, DatabaseError) and "connection" in str(exc).lower():
        return "database"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "channel layer"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "channel layer"
    return None
