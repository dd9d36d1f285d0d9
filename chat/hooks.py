"""Lifecycle hooks other apps plug into, so `chat/` never imports them (dependencies point inward).

Compliance archives a transcript when its conversation ends, coaching evaluates sampling rules
then and again when a late survey arrives, reporting refreshes the day. Each hook receives ids
only and runs after the transaction commits; a hook should enqueue a Celery task rather than do
the work inline, so a slow archive never holds up the chat.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

ConversationHook = Callable[[int], None]

_on_conversation_ended: list[ConversationHook] = []
_on_survey_submitted: list[ConversationHook] = []


def register_on_conversation_ended(fn: ConversationHook) -> None:
    if fn not in _on_conversation_ended:
        _on_conversation_ended.append(fn)


def register_on_survey_submitted(fn: ConversationHook) -> None:
    if fn not in _on_survey_submitted:
        _on_survey_submitted.append(fn)


def conversation_ended_on_commit(conversation_id: int) -> None:
    for fn in _on_conversation_ended:
        transaction.on_commit(lambda fn=fn: fn(conversation_id))


def survey_submitted_on_commit(conversation_id: int) -> None:
    for fn in _on_survey_submitted:
        transaction.on_commit(lambda fn=fn: fn(conversation_id))
