"""Supervisors over live chats: which chats one may see, sitting in, whispers, barging in, and
training chats. Reads check access here; every sit-in, whisper and barge-in is audited.

Who is a supervisor of which departments is decided outside chat (coaching registers it with
`register_supervisor_scope`), so chat imports no other app. Without a registration only
superusers supervise, over every department.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from chat import assignment, events, frames, services
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import AgentProfile, Assignment, Conversation, Department, Message
from chat.pipeline import Inbound, run
from compliance import audit

# user -> department ids it supervises: None = all, empty set = not a supervisor.
SupervisorScope = Callable[[Any], "set[int] | None"]


def _superusers_only(user: Any) -> set[int] | None:
    return None if getattr(user, "is_superuser", False) and user.is_active else set()


_scope: list[SupervisorScope] = [_superusers_only]


def register_supervisor_scope(fn: SupervisorScope) -> None:
    _scope[0] = fn


def supervised_departments(*, user: Any) -> set[int] | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    return _scope[0](user)


def is_supervisor(*, user: Any) -> bool:
    return supervised_departments(user=user) != set()


def _scoped(user: Any, qs: Any) -> Any:
    ids = supervised_departments(user=user)
    return qs if ids is None else qs.filter(department_id__in=ids)


def _live_row(c: Conversation, now: Any) -> dict[str, Any]:
    waited_until = c.assigned_at or now
    return {
        "conversation_id": c.pk,
        "status": c.status,
        "department": {"id": c.department_id, "name": c.department.name},
        "agent": {"user_id": c.agent.user_id, "name": c.agent.display_name} if c.agent else None,
        "visitor_name": c.visitor.name,
        "subject": c.subject,
        "is_training": c.is_training,
        # Still waiting for a first accept: the page keeps counting the wait up by itself.
        "waiting": c.assigned_at is None,
        "wait_seconds": int((waited_until - (c.queued_at or c.created_at)).total_seconds()),
        "duration_seconds": int((now - c.created_at).total_seconds()),
    }


def _live_queryset(user: Any) -> Any:
    return _scoped(
        user,
        Conversation.objects.filter(status__in=Conversation.OPEN_STATUSES).select_related(
            "department", "agent", "visitor"
        ),
    )


def live_conversations(*, user: Any) -> list[dict[str, Any]]:
    """Every open chat in the supervisor's departments, with its agent, wait and duration."""
    if not is_supervisor(user=user):
        return []
    now = timezone.now()
    return [_live_row(c, now) for c in _live_queryset(user).order_by("created_at", "pk")]


def live_row(*, user: Any, conversation_id: int) -> dict[str, Any] | None:
    """One chat's live row as this supervisor may see it now; None when it is no longer open or
    not (or no longer) in the supervisor's departments. Read afresh for every live event, so a
    supervisor who lost a department stops hearing about it at once."""
    if not is_supervisor(user=user):
        return None
    c = _live_queryset(user).filter(pk=conversation_id).first()
    return _live_row(c, timezone.now()) if c is not None else None


def live_department_ids(*, user: Any) -> list[int]:
    """The departments whose live events this supervisor's socket may hear."""
    ids = supervised_departments(user=user)
    qs = Department.objects.all() if ids is None else Department.objects.filter(pk__in=ids)
    return list(qs.order_by("pk").values_list("pk", flat=True))


def get_conversation_for_supervisor(*, user: Any, conversation_id: object) -> Conversation:
    """A chat in one of the supervisor's departments; anything else is "not found"."""
    if (
        not isinstance(conversation_id, int)
        or isinstance(conversation_id, bool)
        or not is_supervisor(user=user)
    ):
        raise NotFound()
    conversation = (
        _scoped(user, Conversation.objects.filter(pk=conversation_id))
        .select_related("department", "agent", "visitor")
        .first()
    )
    if conversation is None:
        raise NotFound("No such chat in your departments.")
    return conversation


def may_follow(*, user: Any, conversation_id: int) -> bool:
    """Whether the supervisor may still follow the chat it sits in on (its department may have
    changed by a transfer, or the supervisor lost the department or the role)."""
    try:
        get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    except NotFound:
        return False
    return True


def supervisor_messages_after(*, conversation: Conversation, after_seq: int) -> list[Message]:
    # Supervisors oversee everything said in a chat, whispers included.
    return list(
        Message.objects.filter(conversation=conversation, seq__gt=after_seq).order_by("seq")[:500]
    )


def sit_in(*, user: Any, conversation_id: object, source_ip: str | None = None) -> Conversation:
    """Record that the supervisor follows the chat. The visitor is told nothing."""
    conversation = get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    with transaction.atomic():
        audit.record(
            action="chat.sit_in",
            actor=user,
            role=audit.role_of(user),
            source_ip=source_ip,
            target=f"conversation:{conversation.pk}",
        )
    return conversation


def _require_open(conversation: Conversation) -> None:
    if conversation.status != Conversation.Status.ACTIVE or conversation.agent is None:
        raise Conflict("The chat is not active with an agent.", code="not_active")


def whisper(
    *,
    user: Any,
    conversation_id: object,
    body: Any,
    client_id: Any = None,
    source_ip: str | None = None,
) -> Message:
    """A line only the chat's agent sees: never sent to a visitor group, page or transcript."""
    conversation = get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    _require_open(conversation)
    with transaction.atomic():
        message, created = run(
            Inbound(
                conversation_id=conversation.pk,
                role=Message.Role.SUPERVISOR,
                sender_id=user.pk,
                body=body,
                client_id=client_id,
                visibility=Message.Visibility.WHISPER,
                whisper_to_id=conversation.agent.user_id,
            )
        )
        if created:
            audit.record(
                action="chat.whisper",
                actor=user,
                role=audit.role_of(user),
                source_ip=source_ip,
                target=f"conversation:{conversation.pk}",
                details={"message_id": message.pk, "to_user_id": conversation.agent.user_id},
            )
    return message


def _has_barged_in(conversation: Conversation, user: Any) -> bool:
    return Message.objects.filter(
        conversation=conversation, role=Message.Role.SYSTEM, meta__barge_in=user.pk
    ).exists()


def barge_in(*, user: Any, conversation_id: object, source_ip: str | None = None) -> Conversation:
    """Join the chat publicly: the visitor sees "A supervisor joined the chat." Idempotent."""
    conversation = get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    _require_open(conversation)
    with transaction.atomic():
        Conversation.objects.select_for_update(of=("self",)).filter(pk=conversation.pk).first()
        if _has_barged_in(conversation, user):
            return conversation
        run(
            Inbound(
                conversation_id=conversation.pk,
                role=Message.Role.SYSTEM,
                body="A supervisor joined the chat.",
                meta={"barge_in": user.pk},
            )
        )
        audit.record(
            action="chat.barge_in",
            actor=user,
            role=audit.role_of(user),
            source_ip=source_ip,
            target=f"conversation:{conversation.pk}",
        )
    return conversation


def take_over(*, user: Any, conversation_id: object, source_ip: str | None = None) -> Conversation:
    """The supervisor becomes the chat's holder (it needs an agent profile); the agent is released.

    The visitor sees "A supervisor took over the chat."; the supervisor's workspace gets the chat
    like an accepted offer, and may also write from the live page (a take-over is a barge-in).
    """
    conversation = get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    profile = AgentProfile.objects.filter(user=user).first()
    if profile is None:
        raise InvalidInput(
            "Taking over needs an agent profile; barge in instead.", code="no_profile"
        )
    now = timezone.now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("department", "agent", "visitor")
            .get(pk=conversation.pk)
        )
        _require_open(conversation)
        previous = conversation.agent
        if previous is not None and previous.pk == profile.pk:
            return conversation
        open_assignment = conversation.assignments.filter(ended_at__isnull=True).first()
        if open_assignment is not None:
            open_assignment.ended_at = now
            open_assignment.end_reason = Assignment.EndReason.TRANSFERRED
            open_assignment.transfer_note = "Taken over by a supervisor"
            open_assignment.save(update_fields=["ended_at", "end_reason", "transfer_note"])
        Assignment.objects.create(
            conversation=conversation, agent=profile, offered_at=now, accepted_at=now
        )
        conversation.agent = profile
        conversation.save(update_fields=["agent"])
        if previous is not None:
            events.send_event_on_commit(
                events.agent_group(previous.user_id),
                {"type": "unassigned", "conversation_id": conversation.pk, "reason": "taken_over"},
                handler="chat.unsubscribe",
                conversation_id=conversation.pk,
            )
        run(
            Inbound(
                conversation_id=conversation.pk,
                role=Message.Role.SYSTEM,
                body="A supervisor took over the chat.",
                meta={"barge_in": user.pk, "take_over": True},
            )
        )
        events.send_event_on_commit(
            events.agent_group(user.pk),
            frames.staff_conversation_frame(conversation),
            handler="chat.subscribe",
            conversation_id=conversation.pk,
        )
        events.send_event_on_commit(
            events.visitor_group(conversation.pk),
            frames.visitor_conversation_frame(conversation, queue_position=None),
        )
        events.send_live_change_on_commit(conversation.pk, conversation.department_id)
        audit.record(
            action="chat.take_over",
            actor=user,
            role=audit.role_of(user),
            source_ip=source_ip,
            target=f"conversation:{conversation.pk}",
            details={"from_agent_id": previous.pk if previous else None},
        )
    if previous is not None:
        assignment.dispatch_for_agent(previous)
    return conversation


def post_supervisor_message(
    *, user: Any, conversation_id: object, body: Any, client_id: Any = None
) -> Message:
    """A public line from a supervisor who has barged in."""
    conversation = get_conversation_for_supervisor(user=user, conversation_id=conversation_id)
    _require_open(conversation)
    if not _has_barged_in(conversation, user):
        raise Conflict("Join the chat (barge in) before writing to the visitor.", code="not_joined")
    message, _ = run(
        Inbound(
            conversation_id=conversation.pk,
            role=Message.Role.SUPERVISOR,
            sender_id=user.pk,
            body=body,
            client_id=client_id,
        )
    )
    return message


def start_training_chat(
    *,
    user: Any,
    agent_id: int | None,
    department_id: int | None,
    opening_line: str,
    visitor_name: str,
) -> tuple[Conversation, str]:
    """A mock chat (is_training) the supervisor plays as the visitor; the visitor token is returned.

    Refused unless the chosen agent (or someone in the chosen department) is online with a free
    slot: a training chat must not sit in a queue in front of real visitors' chats.
    """
    if not is_supervisor(user=user):
        raise NotFound()
    if (agent_id is None) == (department_id is None):
        raise InvalidInput("Choose either an agent or a department.", code="invalid_field")
    scope = supervised_departments(user=user)
    agent = None
    if agent_id is not None:
        agent = AgentProfile.objects.filter(pk=agent_id).first()
        if agent is None:
            raise InvalidInput("No such agent.", code="invalid_field")
        departments = (
            agent.departments.all() if scope is None else agent.departments.filter(pk__in=scope)
        )
        department = departments.order_by("pk").first()
        if department is None:
            raise InvalidInput("That agent is in none of your departments.", code="invalid_field")
    else:
        department = Department.objects.filter(pk=department_id).first()
        if department is None or (scope is not None and department.pk not in scope):
            raise InvalidInput("No such department among yours.", code="invalid_field")
    with transaction.atomic():
        free = assignment._lock_agent_with_capacity(department, exclude_ids=set(), only_id=agent_id)
        if free is None:
            message = (
                f"{agent.display_name} is not online with a free chat slot; a mock chat needs one."
                if agent is not None
                else "No agent of this department is online with a free chat slot; "
                "a mock chat needs one."
            )
            raise Conflict(message, code="agent_offline")
        visitor, token = services.create_visitor()
        visitor.name = visitor_name
        visitor.save(update_fields=["name"])
        now = timezone.now()
        conversation = Conversation.objects.create(
            visitor=visitor,
            department=department,
            status=Conversation.Status.QUEUED,
            created_at=now,
            queued_at=now,
            queue_order_at=now,
            subject=opening_line[:200],
            is_training=True,
        )
        run(Inbound(conversation_id=conversation.pk, role=Message.Role.VISITOR, body=opening_line))
        conversation.refresh_from_db()
        conversation.department = department
        assignment._offer(conversation, free, now=now)
    conversation.refresh_from_db()
    return conversation, token
