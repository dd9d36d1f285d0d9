"""Routing: the queue, offers to agents, acceptance, timeouts, presence and transfers.

Concurrency rule (several server processes, simultaneous events): every change of who holds a
conversation locks the conversation row first and then the agent row, always in that order, so
two processes can neither hand one chat to two agents nor push an agent past its maximum. The
partial unique index `one_open_assignment` backs this up inside the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from chat import events, frames
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import (
    AgentProfile,
    Assignment,
    Conversation,
    Department,
    Message,
    PresenceInterval,
)
from chat.pipeline import FilterContext, Inbound, clean_body, filter_text, run

HELD = Conversation.HELD_STATUSES


def held_count(agent: AgentProfile) -> int:
    return Conversation.objects.filter(agent=agent, status__in=HELD).count()


def _lock_agent_with_capacity(
    department: Department, *, exclude_ids: set[int], only_id: int | None = None
) -> AgentProfile | None:
    """The online agent with free capacity, fewest held chats first, longest idle on a tie; locked."""
    candidates = (
        AgentProfile.objects.filter(departments=department, presence=AgentProfile.Presence.ONLINE)
        .exclude(pk__in=exclude_ids)
        .annotate(held=Count("conversations", filter=Q(conversations__status__in=HELD)))
        .filter(held__lt=F("max_chats"))
        .order_by("held", F("last_assigned_at").asc(nulls_first=True), "pk")
    )
    if only_id is not None:
        candidates = candidates.filter(pk=only_id)
    ids = list(candidates.values_list("pk", flat=True)[:20])
    if not ids:
        return None
    # Lock every candidate in one statement, in primary-key order: locking them one at a time in
    # preference order let two dispatchers each hold the agent the other wanted next (deadlock).
    list(AgentProfile.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
    # Ask again under the locks: the answer above may be stale, and nobody can add a chat to
    # these agents or change their presence until we commit.
    chosen = candidates.filter(pk__in=ids).values_list("pk", flat=True).first()
    return AgentProfile.objects.get(pk=chosen) if chosen is not None else None


def _declined_by(conversation: Conversation) -> set[int]:
    return set(
        conversation.assignments.filter(
            end_reason__in=[Assignment.EndReason.DECLINED, Assignment.EndReason.TIMED_OUT]
        ).values_list("agent_id", flat=True)
    )


def _system_line(conversation_id: int, body: str, *, visibility: str = Message.Visibility.PUBLIC) -> None:
    run(Inbound(conversation_id=conversation_id, role=Message.Role.SYSTEM, body=body, visibility=visibility))


def _notify_conversation(conversation: Conversation, *, queue_position: int | None = None) -> None:
    # The system line just written ("... joined") moved the sequence numbers in the database, not
    # on this instance; a frame with the old last_seq would make clients think they are behind.
    conversation.refresh_from_db(fields=["last_seq", "last_public_seq"])
    events.send_event_on_commit(
        events.visitor_group(conversation.pk),
        frames.visitor_conversation_frame(conversation, queue_position=queue_position),
    )
    events.send_event_on_commit(events.staff_group(conversation.pk), frames.staff_conversation_frame(conversation))
    events.send_live_change_on_commit(conversation.pk, conversation.department_id)


def _offer(conversation: Conversation, agent: AgentProfile, *, now: datetime, note: str = "") -> Assignment:
    assignment = Assignment.objects.create(conversation=conversation, agent=agent, offered_at=now, transfer_note=note)
    conversation.status = Conversation.Status.OFFERED
    conversation.agent = agent
    conversation.save(update_fields=["status", "agent"])
    agent.last_assigned_at = now
    agent.save(update_fields=["last_assigned_at"])
    frame = frames.staff_conversation_frame(conversation)
    frame["type"] = "offer"
    frame["transfer_note"] = note
    frame["expires_in"] = conversation.department.accept_timeout_seconds
    events.send_event_on_commit(events.agent_group(agent.user_id), frame, handler="chat.subscribe",
                                conversation_id=conversation.pk)
    _notify_conversation(conversation)
    return assignment


def offer_next_in_queue(*, department_id: int) -> Conversation | None:
    """Offer the head of a department's queue to the best agent; None when nothing moved."""
    with transaction.atomic():
        department = Department.objects.get(pk=department_id)
        if department.routing == Department.Routing.PICK:
            return None
        # Wait for the head rather than skip it (skip_locked): a skipping dispatcher offers a
        # newer chat before an older one, and one that finds the head locked while the holder
        # saw no free agent yet leaves a chat waiting next to an agent who just came online.
        queued = (
            Conversation.objects.select_for_update()
            .filter(department=department, status=Conversation.Status.QUEUED)
            .order_by("queue_order_at", "pk")
        )
        for conversation in queued[:10]:
            declined = _declined_by(conversation)
            agent = _lock_agent_with_capacity(department, exclude_ids=declined)
            if agent is None:
                if not declined:
                    return None  # nobody can take the head, so nobody can take a later chat: FIFO
                continue
            conversation.department = department
            _offer(conversation, agent, now=timezone.now())
            return conversation
        return None


def dispatch(*, department_id: int) -> int:
    """Offer queued chats until no agent has room; then tell everyone waiting their place."""
    offered = 0
    while offer_next_in_queue(department_id=department_id) is not None:
        offered += 1
    broadcast_queue(department_id=department_id)
    return offered


def dispatch_for_agent(agent: AgentProfile) -> None:
    for department_id in agent.departments.values_list("pk", flat=True):
        dispatch(department_id=department_id)


def queue_positions(*, department_id: int) -> list[Conversation]:
    return list(
        Conversation.objects.filter(department_id=department_id, status=Conversation.Status.QUEUED)
        .select_related("visitor", "department")
        .order_by("queue_order_at", "pk")
    )


def queue_position_of(conversation: Conversation) -> int | None:
    if conversation.status != Conversation.Status.QUEUED:
        return None
    ahead = Conversation.objects.filter(
        department_id=conversation.department_id, status=Conversation.Status.QUEUED
    ).filter(Q(queue_order_at__lt=conversation.queue_order_at) | Q(queue_order_at=conversation.queue_order_at,
                                                                   pk__lt=conversation.pk))
    return ahead.count() + 1


def broadcast_queue(*, department_id: int) -> None:
    waiting = queue_positions(department_id=department_id)
    for position, conversation in enumerate(waiting, start=1):
        events.send_event_on_commit(
            events.visitor_group(conversation.pk),
            {"type": "queue", "conversation_id": conversation.pk, "position": position},
        )
    events.send_event_on_commit(
        events.department_group(department_id),
        {
            "type": "queue",
            "department_id": department_id,
            "entries": [frames.queue_entry(c, i) for i, c in enumerate(waiting, start=1)],
        },
    )


def _locked_held(conversation_id: int, agent: AgentProfile, status: str) -> Conversation:
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("department", "visitor")
        .filter(pk=conversation_id, agent=agent, status=status)
        .first()
    )
    if conversation is None:
        raise NotFound()
    return conversation


def _open_assignment(conversation: Conversation) -> Assignment | None:
    return conversation.assignments.filter(ended_at__isnull=True).first()


def accept_offer(*, agent: AgentProfile, conversation_id: int) -> Conversation:
    with transaction.atomic():
        conversation = _locked_held(conversation_id, agent, Conversation.Status.OFFERED)
        now = timezone.now()
        assignment = _open_assignment(conversation)
        assert assignment is not None and assignment.agent_id == agent.pk
        assignment.accepted_at = now
        assignment.save(update_fields=["accepted_at"])
        conversation.status = Conversation.Status.ACTIVE
        fields = ["status"]
        if conversation.assigned_at is None:
            conversation.assigned_at = now
            fields.append("assigned_at")
        conversation.save(update_fields=fields)
        _system_line(conversation.pk, f"{agent.display_name} joined the chat.")
        _notify_conversation(conversation)
    return conversation


def take_from_queue(*, agent: AgentProfile, conversation_id: int) -> Conversation:
    """An agent picks a waiting chat itself (departments set to let agents pick)."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("department", "visitor")
            .filter(pk=conversation_id, department__in=agent.departments.all())
            .first()
        )
        if conversation is None:
            raise NotFound()
        if conversation.status != Conversation.Status.QUEUED:
            raise Conflict("Another agent already took this chat.", code="taken")
        if conversation.department.routing != Department.Routing.PICK:
            raise InvalidInput("Chats in this department are assigned automatically.", code="auto_routed")
        locked = _lock_agent_with_capacity(conversation.department, exclude_ids=set(), only_id=agent.pk)
        if locked is None:
            raise Conflict("You are at your maximum number of chats, or not online.", code="at_capacity")
        now = timezone.now()
        _offer(conversation, locked, now=now)
        agent_after = locked
    broadcast_queue(department_id=conversation.department_id)
    return accept_offer(agent=agent_after, conversation_id=conversation_id)


def _requeue(conversation: Conversation, assignment: Assignment, *, reason: str, now: datetime) -> None:
    assignment.ended_at = now
    assignment.end_reason = reason
    assignment.save(update_fields=["ended_at", "end_reason"])
    conversation.status = Conversation.Status.QUEUED
    conversation.agent = None
    conversation.save(update_fields=["status", "agent"])
    events.send_event_on_commit(
        events.agent_group(assignment.agent.user_id),
        {"type": "offer_withdrawn" if assignment.accepted_at is None else "unassigned",
         "conversation_id": conversation.pk, "reason": reason},
        handler="chat.unsubscribe",
        conversation_id=conversation.pk,
    )
    _notify_conversation(conversation, queue_position=queue_position_of(conversation))


def decline_offer(*, agent: AgentProfile, conversation_id: int) -> None:
    with transaction.atomic():
        conversation = _locked_held(conversation_id, agent, Conversation.Status.OFFERED)
        assignment = _open_assignment(conversation)
        assert assignment is not None
        _requeue(conversation, assignment, reason=Assignment.EndReason.DECLINED, now=timezone.now())
    dispatch(department_id=conversation.department_id)


def expire_offers(*, now: datetime | None = None) -> int:
    """Offers not accepted in their department's time go to the next agent; the agent goes away.

    Setting the silent agent to away (as established chat products do) keeps the chat from
    bouncing back to someone who is not at the desk; the agent sees why and can come back.
    """
    now = now or timezone.now()
    expired = 0
    stale = Assignment.objects.filter(ended_at__isnull=True, accepted_at__isnull=True).select_related(
        "conversation__department"
    )
    for assignment in stale:
        deadline = assignment.offered_at + timedelta(seconds=assignment.conversation.department.accept_timeout_seconds)
        if deadline > now:
            continue
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update(of=("self",))
                .select_related("department", "visitor")
                .filter(pk=assignment.conversation_id, status=Conversation.Status.OFFERED, agent_id=assignment.agent_id)
                .first()
            )
            current = conversation and _open_assignment(conversation)
            if not current or current.pk != assignment.pk:
                continue  # accepted or moved on since we looked
            _requeue(conversation, current, reason=Assignment.EndReason.TIMED_OUT, now=now)
            agent = AgentProfile.objects.select_for_update().get(pk=assignment.agent_id)
            if agent.presence == AgentProfile.Presence.ONLINE:
                _set_presence_locked(agent, AgentProfile.Presence.AWAY, now=now, reason="missed_offer")
        expired += 1
        dispatch(department_id=assignment.conversation.department_id)
    return expired


def _set_presence_locked(agent: AgentProfile, status: str, *, now: datetime, reason: str = "") -> None:
    if agent.presence == status:
        return
    PresenceInterval.objects.filter(agent=agent, ended_at__isnull=True).update(ended_at=now)
    PresenceInterval.objects.create(agent=agent, status=status, started_at=now)
    agent.presence = status
    agent.presence_changed_at = now
    agent.save(update_fields=["presence", "presence_changed_at"])
    events.send_event_on_commit(
        events.agent_group(agent.user_id), {"type": "presence", "status": status, "reason": reason or None}
    )


def set_presence(*, agent: AgentProfile, status: str, reason: str = "") -> AgentProfile:
    if status not in AgentProfile.Presence.values:
        raise InvalidInput("status must be one of online, away, offline.")
    now = timezone.now()
    with transaction.atomic():
        locked = AgentProfile.objects.select_for_update().get(pk=agent.pk)
        _set_presence_locked(locked, status, now=now, reason=reason)
    if status == AgentProfile.Presence.ONLINE:
        dispatch_for_agent(locked)
    else:
        withdraw_offers(agent=locked, reason=Assignment.EndReason.WITHDRAWN)
    return locked


def withdraw_offers(*, agent: AgentProfile, reason: str) -> None:
    """Offers still ringing for an agent who stepped away go back to the queue."""
    offered = list(
        Conversation.objects.filter(agent=agent, status=Conversation.Status.OFFERED).values_list("pk", flat=True)
    )
    for conversation_id in offered:
        with transaction.atomic():
            try:
                conversation = _locked_held(conversation_id, agent, Conversation.Status.OFFERED)
            except NotFound:
                continue
            assignment = _open_assignment(conversation)
            if assignment is not None:
                _requeue(conversation, assignment, reason=reason, now=timezone.now())
        dispatch(department_id=conversation.department_id)


def release_lost_agent(*, agent: AgentProfile, now: datetime) -> None:
    """An agent whose sockets went silent: set offline, and its chats go to someone who is there."""
    with transaction.atomic():
        locked = AgentProfile.objects.select_for_update().get(pk=agent.pk)
        _set_presence_locked(locked, AgentProfile.Presence.OFFLINE, now=now, reason="connection_lost")
    held = list(Conversation.objects.filter(agent=agent, status__in=HELD).values_list("pk", "status"))
    departments = set()
    for conversation_id, status in held:
        with transaction.atomic():
            try:
                conversation = _locked_held(conversation_id, agent, status)
            except NotFound:
                continue
            assignment = _open_assignment(conversation)
            if assignment is None:
                continue
            _requeue(conversation, assignment, reason=Assignment.EndReason.AGENT_LOST, now=now)
            if status == Conversation.Status.ACTIVE:
                _system_line(conversation.pk, "Your agent was disconnected; the next available agent will continue.")
            departments.add(conversation.department_id)
    for department_id in departments:
        dispatch(department_id=department_id)


def transfer(
    *,
    agent: AgentProfile,
    conversation_id: int,
    to_agent_id: int | None = None,
    to_department_id: int | None = None,
    note: str = "",
) -> Conversation:
    """Hand an active chat to another agent or department; the history stays with the chat."""
    if (to_agent_id is None) == (to_department_id is None):
        raise InvalidInput("Give exactly one of to_agent or to_department.")
    if not isinstance(note, str) or len(note) > 1000:
        raise InvalidInput("The transfer note must be text of at most 1000 characters.")
    now = timezone.now()
    with transaction.atomic():
        conversation = _locked_held(conversation_id, agent, Conversation.Status.ACTIVE)
        assignment = _open_assignment(conversation)
        assert assignment is not None
        # A transfer to another department takes the chat off this department's live views.
        events.send_live_change_on_commit(conversation.pk, conversation.department_id)
        # The note is kept on the assignment and sent in the offer frame: masked like a message.
        note = filter_text(
            clean_body(note),
            FilterContext(conversation_id=conversation.pk, department_id=conversation.department_id,
                          role=Message.Role.AGENT, field="transfer_note"),
        ) if note.strip() else ""
        target: AgentProfile | None = None
        if to_agent_id is not None:
            target_profile = AgentProfile.objects.filter(user_id=to_agent_id).first()
            if target_profile is None or target_profile.pk == agent.pk:
                raise InvalidInput("Choose another agent to transfer to.", code="unknown_agent")
            target = _lock_agent_with_capacity(
                conversation.department, exclude_ids=set(), only_id=target_profile.pk
            ) or _lock_any_department(target_profile)
            if target is None:
                raise Conflict("That agent is not online or has no free chat slot.", code="at_capacity")
        else:
            department = Department.objects.filter(pk=to_department_id).first()
            if department is None:
                raise InvalidInput("No such department.", code="unknown_department")
            conversation.department = department
            conversation.save(update_fields=["department"])
        assignment.ended_at = now
        assignment.end_reason = Assignment.EndReason.TRANSFERRED
        assignment.transfer_note = note
        assignment.save(update_fields=["ended_at", "end_reason", "transfer_note"])
        events.send_event_on_commit(
            events.agent_group(agent.user_id),
            {"type": "unassigned", "conversation_id": conversation.pk, "reason": "transferred"},
            handler="chat.unsubscribe",
            conversation_id=conversation.pk,
        )
        if note.strip():
            run(Inbound(conversation_id=conversation.pk, role=Message.Role.AGENT, sender_id=agent.user_id,
                        body=f"Transfer note: {note}", visibility=Message.Visibility.INTERNAL,
                        meta={"transfer": True}))
        _system_line(conversation.pk, "You are being transferred to another agent. Please stay in the chat.")
        if target is not None:
            _offer(conversation, target, now=now, note=note)
        else:
            conversation.status = Conversation.Status.QUEUED
            conversation.agent = None
            conversation.save(update_fields=["status", "agent"])
            _notify_conversation(conversation, queue_position=queue_position_of(conversation))
    dispatch(department_id=conversation.department_id)
    dispatch_for_agent(agent)
    return conversation


def _lock_any_department(target: AgentProfile) -> AgentProfile | None:
    """A transfer to a named agent may cross departments: check its capacity directly."""
    locked = AgentProfile.objects.select_for_update().get(pk=target.pk)
    if locked.presence == AgentProfile.Presence.ONLINE and held_count(locked) < locked.max_chats:
        return locked
    return None
