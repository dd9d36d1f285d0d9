"""Routing and queue at the service level: who gets a chat, when it moves, and what is recorded.

These call chat.assignment and chat.services directly against the database; only the channel
layer is replaced, by a recorder of the events the services send after commit.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat import assignment, events, selectors, services
from chat.errors import ChatError, Conflict, InvalidInput
from chat.models import (
    AgentProfile,
    Assignment,
    Conversation,
    Department,
    Message,
    PresenceInterval,
    Visitor,
)
from tests.factories import VisitorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def broadcasts(monkeypatch, django_capture_on_commit_callbacks):
    """Events the services sent, as (group, frame), once their transaction committed."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "_send", lambda group, event: sent.append((group, event["frame"])))

    class Recorder:
        def during(self):
            """Run the on-commit callbacks of what happens inside, as a real commit would."""
            return django_capture_on_commit_callbacks(execute=True)

        def to(self, group: str) -> list[dict[str, Any]]:
            return [frame for g, frame in sent if g == group]

    return Recorder()


def online(agent: AgentProfile) -> AgentProfile:
    return assignment.set_presence(agent=agent, status=AgentProfile.Presence.ONLINE)


def new_chat(department: Department, message: str = "hello") -> Conversation:
    return services.start_conversation(
        visitor=VisitorFactory(), department_slug=department.slug, message=message
    )


def fresh(obj):
    obj.refresh_from_db()
    return obj


def held(agent: AgentProfile) -> list[int]:
    return sorted(
        Conversation.objects.filter(agent=agent, status__in=Conversation.HELD_STATUSES).values_list(
            "pk", flat=True
        )
    )


def assignments(conversation: Conversation) -> list[Assignment]:
    return list(
        Assignment.objects.filter(conversation=conversation)
        .select_related("agent__user")
        .order_by("pk")
    )


def accept(agent: AgentProfile, conversation: Conversation) -> Conversation:
    return assignment.accept_offer(agent=agent, conversation_id=conversation.pk)


# --- who gets the next chat -------------------------------------------------------------------


def test_fewest_active_chats_first(agent, second_agent):
    online(agent), online(second_agent)
    now = timezone.now()
    # Bob was assigned most recently, yet has fewer chats: chat count beats idle time.
    AgentProfile.objects.filter(pk=agent.pk).update(last_assigned_at=now - timedelta(hours=1))
    AgentProfile.objects.filter(pk=second_agent.pk).update(
        last_assigned_at=now - timedelta(minutes=1)
    )
    first = new_chat(agent.departments.get())
    assert first.agent_id == agent.pk  # 0 vs 0: Alice idle longer
    second = new_chat(agent.departments.get())
    assert second.agent_id == second_agent.pk  # 1 vs 0: Bob
    accept(agent, first)  # accepting does not change the count: offered and active both hold a slot
    third = new_chat(agent.departments.get())
    # 1 vs 1: whoever was assigned longest ago, which is Alice (first) rather than Bob (second).
    assert third.agent_id == agent.pk
    fourth = new_chat(agent.departments.get())
    assert fourth.agent_id == second_agent.pk  # 2 vs 1


def test_longest_idle_wins_a_tie_whatever_the_creation_order(
    agent, second_agent, department, make_agent
):
    online(agent), online(second_agent)
    now = timezone.now()
    AgentProfile.objects.filter(pk=agent.pk).update(last_assigned_at=now - timedelta(minutes=1))
    AgentProfile.objects.filter(pk=second_agent.pk).update(
        last_assigned_at=now - timedelta(minutes=30)
    )
    assert new_chat(department).agent_id == second_agent.pk
    # Never assigned at all counts as idle longest.
    carol = online(make_agent("carol", "Carol Agent", [department]))
    assert new_chat(department).agent_id == carol.pk


def test_capacity_is_respected_and_the_rest_waits(make_agent, department):
    alice = online(make_agent("alice", "Alice Agent", [department], max_chats=2))
    bob = online(make_agent("bob", "Bob Agent", [department], max_chats=1))
    chats = [new_chat(department, f"chat {i}") for i in range(5)]
    assert len(held(alice)) == 2 and len(held(bob)) == 1
    waiting = [c for c in map(fresh, chats) if c.status == Conversation.Status.QUEUED]
    assert [assignment.queue_position_of(c) for c in waiting] == [1, 2]
    assert waiting == chats[3:]  # the first three were offered, in order
    # An agent at capacity is never offered more, not even after accepting.
    for conversation in map(fresh, chats[:3]):
        accept(conversation.agent, conversation)
    assignment.dispatch(department_id=department.pk)
    assert len(held(alice)) == 2 and len(held(bob)) == 1
    # A slot frees up: the head of the queue goes there.
    bobs = Conversation.objects.get(agent=bob)
    services.end_conversation(conversation_id=bobs.pk, ended_by=Conversation.EndedBy.AGENT)
    assert (
        fresh(chats[3]).status == Conversation.Status.OFFERED and fresh(chats[3]).agent_id == bob.pk
    )
    assert (
        fresh(chats[4]).status == Conversation.Status.QUEUED
        and assignment.queue_position_of(fresh(chats[4])) == 1
    )


def test_agents_who_are_away_or_offline_get_nothing(agent, second_agent, department):
    assignment.set_presence(agent=agent, status=AgentProfile.Presence.AWAY)
    conversation = new_chat(department)
    assert fresh(conversation).status == Conversation.Status.QUEUED
    online(second_agent)
    assert fresh(conversation).agent_id == second_agent.pk


def test_the_queue_is_first_in_first_out(make_agent, department, broadcasts):
    chats = [new_chat(department, f"chat {i}") for i in range(3)]
    assert [assignment.queue_position_of(c) for c in chats] == [1, 2, 3]
    solo = make_agent("solo", "Solo Agent", [department], max_chats=1)
    with broadcasts.during():
        online(solo)
    assert held(solo) == [chats[0].pk]
    # Everyone still waiting is told their new place.
    assert broadcasts.to(events.visitor_group(chats[1].pk))[-1] == {
        "type": "queue",
        "conversation_id": chats[1].pk,
        "position": 1,
    }
    assert broadcasts.to(events.visitor_group(chats[2].pk))[-1]["position"] == 2
    for expected_next in (chats[1], chats[2]):
        current = Conversation.objects.get(agent=solo, status__in=Conversation.HELD_STATUSES)
        accept(solo, current)
        services.end_conversation(conversation_id=current.pk, ended_by=Conversation.EndedBy.AGENT)
        assert held(solo) == [expected_next.pk]


def test_a_chat_that_goes_back_to_the_queue_keeps_its_place(make_agent, department):
    alice = online(make_agent("alice", "Alice Agent", [department], max_chats=1))
    first, second, third = (new_chat(department, f"chat {i}") for i in range(3))
    assert held(alice) == [first.pk]
    assignment.decline_offer(agent=alice, conversation_id=first.pk)
    # Alice declined the first, so she is offered the next one; the first stays at the front.
    assert held(alice) == [second.pk]
    assert (
        assignment.queue_position_of(fresh(first)) == 1
        and assignment.queue_position_of(fresh(third)) == 2
    )
    bob = online(make_agent("bob", "Bob Agent", [department], max_chats=1))
    assert held(bob) == [first.pk]


# --- offers that are not answered ------------------------------------------------------------


def test_offer_timeout_goes_to_the_next_agent_and_the_silent_one_is_set_away(
    agent, second_agent, department, broadcasts
):
    Department.objects.filter(pk=department.pk).update(accept_timeout_seconds=20)
    online(agent), online(second_agent)
    AgentProfile.objects.filter(pk=second_agent.pk).update(last_assigned_at=timezone.now())
    conversation = new_chat(department)
    [offer] = assignments(conversation)
    assert offer.agent_id == agent.pk
    assert services.sweep(now=offer.offered_at + timedelta(seconds=19))["offers_expired"] == 0
    assert fresh(conversation).agent_id == agent.pk

    expired_at = offer.offered_at + timedelta(seconds=20)
    with broadcasts.during():
        counts = services.sweep(now=expired_at)
    assert counts["offers_expired"] == 1
    timed_out, next_offer = assignments(conversation)
    assert timed_out.pk == offer.pk
    assert (
        timed_out.end_reason == Assignment.EndReason.TIMED_OUT and timed_out.ended_at == expired_at
    )
    # Never accepted: nothing charges Alice for this chat (no accepted_at, no first reply).
    assert timed_out.accepted_at is None and timed_out.first_reply_at is None
    assert next_offer.agent_id == second_agent.pk and next_offer.ended_at is None
    conversation = fresh(conversation)
    assert (
        conversation.status == Conversation.Status.OFFERED
        and conversation.agent_id == second_agent.pk
    )
    assert conversation.assigned_at is None

    alice = fresh(agent)
    assert alice.presence == AgentProfile.Presence.AWAY and alice.presence_changed_at == expired_at
    intervals = list(
        PresenceInterval.objects.filter(agent=alice)
        .order_by("started_at")
        .values_list("status", "started_at", "ended_at")
    )
    assert intervals[-2][0] == "online" and intervals[-2][2] == expired_at
    assert intervals[-1] == ("away", expired_at, None)
    alice_frames = broadcasts.to(events.agent_group(alice.user_id))
    assert {
        "type": "offer_withdrawn",
        "conversation_id": conversation.pk,
        "reason": "timed_out",
    } in alice_frames
    assert {"type": "presence", "status": "away", "reason": "missed_offer"} in alice_frames
    assert any(
        f["type"] == "offer" and f["conversation_id"] == conversation.pk
        for f in broadcasts.to(events.agent_group(second_agent.user_id))
    )

    # Bob accepts: only his interval is the one reporting charges.
    accept(second_agent, conversation)
    charged = Assignment.objects.filter(conversation=conversation, accepted_at__isnull=False)
    assert list(charged.values_list("agent_id", flat=True)) == [second_agent.pk]
    # Sweeping again changes nothing.
    assert services.sweep(now=expired_at + timedelta(seconds=1))["offers_expired"] == 0


def test_offer_timeout_with_nobody_else_leaves_the_chat_at_the_front_of_the_queue(
    agent, department
):
    online(agent)
    older = new_chat(department)
    [offer] = assignments(older)
    services.sweep(now=offer.offered_at + timedelta(seconds=department.accept_timeout_seconds))
    older = fresh(older)
    assert older.status == Conversation.Status.QUEUED and older.agent_id is None
    newer = new_chat(department)
    assert (
        assignment.queue_position_of(older) == 1 and assignment.queue_position_of(fresh(newer)) == 2
    )


def test_decline_goes_to_the_next_agent(agent, second_agent, department):
    online(agent), online(second_agent)
    AgentProfile.objects.filter(pk=second_agent.pk).update(last_assigned_at=timezone.now())
    conversation = new_chat(department)
    assert fresh(conversation).agent_id == agent.pk
    assignment.decline_offer(agent=agent, conversation_id=conversation.pk)
    declined, offered = assignments(conversation)
    assert declined.agent_id == agent.pk and declined.end_reason == Assignment.EndReason.DECLINED
    assert declined.accepted_at is None and declined.ended_at is not None
    assert offered.agent_id == second_agent.pk and fresh(conversation).agent_id == second_agent.pk
    assert fresh(agent).presence == AgentProfile.Presence.ONLINE  # declining is not a missed offer
    # Bob declines too: nobody is left, the chat waits.
    assignment.decline_offer(agent=second_agent, conversation_id=conversation.pk)
    assert fresh(conversation).status == Conversation.Status.QUEUED
    assert assignment.queue_position_of(fresh(conversation)) == 1
    # Declining what is not (or no longer) yours is "not found".
    with pytest.raises(ChatError) as exc:
        assignment.decline_offer(agent=agent, conversation_id=conversation.pk)
    assert exc.value.code == "not_found"


# --- departments where agents pick ------------------------------------------------------------


def test_pick_department_is_not_auto_assigned_and_take_works(agent, second_agent, department):
    Department.objects.filter(pk=department.pk).update(routing=Department.Routing.PICK)
    online(agent), online(second_agent)
    first, second = new_chat(department, "one"), new_chat(department, "two")
    assert [c.status for c in map(fresh, (first, second))] == ["queued", "queued"]
    assert not Assignment.objects.exists()
    assignment.dispatch(department_id=department.pk)
    assert not Assignment.objects.exists()
    assert [c.pk for c in assignment.queue_positions(department_id=department.pk)] == [
        first.pk,
        second.pk,
    ]

    # Picking the second before the first is allowed: that is the point of picking.
    taken = assignment.take_from_queue(agent=second_agent, conversation_id=second.pk)
    assert taken.status == Conversation.Status.ACTIVE and taken.agent_id == second_agent.pk
    assert taken.assigned_at is not None
    [interval] = assignments(taken)
    assert interval.agent_id == second_agent.pk and interval.accepted_at == taken.assigned_at

    # Two agents take the same chat: the second is refused, nothing changes.
    assignment.take_from_queue(agent=agent, conversation_id=first.pk)
    with pytest.raises(Conflict) as exc:
        assignment.take_from_queue(agent=second_agent, conversation_id=first.pk)
    assert exc.value.code == "taken"
    assert fresh(first).agent_id == agent.pk
    assert [a.agent_id for a in assignments(first)] == [agent.pk]


def test_take_is_refused_at_capacity_when_not_online_and_in_auto_departments(
    make_agent, department, other_department
):
    Department.objects.filter(pk=department.pk).update(routing=Department.Routing.PICK)
    alice = online(make_agent("alice", "Alice Agent", [department, other_department], max_chats=1))
    first, second = new_chat(department), new_chat(department)
    assignment.take_from_queue(agent=alice, conversation_id=first.pk)
    with pytest.raises(Conflict) as exc:
        assignment.take_from_queue(agent=alice, conversation_id=second.pk)
    assert exc.value.code == "at_capacity"
    bob = make_agent("bob", "Bob Agent", [department])  # offline
    with pytest.raises(Conflict) as exc:
        assignment.take_from_queue(agent=bob, conversation_id=second.pk)
    assert exc.value.code == "at_capacity"
    # Chats of a department the agent is not in: not found, like a chat that does not exist.
    carol = online(make_agent("carol", "Carol Agent", [other_department]))
    with pytest.raises(ChatError) as exc:
        assignment.take_from_queue(agent=carol, conversation_id=second.pk)
    assert exc.value.code == "not_found"
    # Auto departments assign by themselves; picking there is refused (nobody online: it waits).
    assignment.set_presence(agent=carol, status=AgentProfile.Presence.OFFLINE)
    assignment.set_presence(agent=alice, status=AgentProfile.Presence.AWAY)
    queued_auto = new_chat(other_department)
    assert fresh(queued_auto).status == Conversation.Status.QUEUED
    with pytest.raises(InvalidInput) as exc:
        assignment.take_from_queue(agent=alice, conversation_id=queued_auto.pk)
    assert exc.value.code == "auto_routed"


# --- transfers --------------------------------------------------------------------------------


def _active_chat(agent: AgentProfile, department: Department) -> Conversation:
    conversation = new_chat(department, "my order is late")
    assert fresh(conversation).agent_id == agent.pk
    accept(agent, conversation)
    services.post_staff_message(
        user=agent.user, conversation_id=conversation.pk, body="Let me check.", client_id="a-1"
    )
    return fresh(conversation)


def test_transfer_to_an_agent_keeps_history_records_intervals_and_hides_the_note(
    agent, second_agent, department, broadcasts
):
    online(agent)
    conversation = _active_chat(agent, department)
    assigned_at = conversation.assigned_at
    before = list(Message.objects.filter(conversation=conversation).values_list("seq", "body"))
    online(second_agent)
    note = "VIP customer, refund already approved"
    with broadcasts.during():
        assignment.transfer(
            agent=agent,
            conversation_id=conversation.pk,
            to_agent_id=second_agent.user_id,
            note=note,
        )

    conversation = fresh(conversation)
    assert (
        conversation.status == Conversation.Status.OFFERED
        and conversation.agent_id == second_agent.pk
    )
    first, second = assignments(conversation)
    assert (first.agent_id, first.end_reason, first.transfer_note) == (
        agent.pk,
        "transferred",
        note,
    )
    assert first.accepted_at is not None and first.ended_at is not None
    assert (second.agent_id, second.transfer_note, second.ended_at) == (second_agent.pk, note, None)
    assert second.offered_at >= first.ended_at

    messages = list(Message.objects.filter(conversation=conversation).order_by("seq"))
    assert [(m.seq, m.body) for m in messages[: len(before)]] == before  # history kept, same chat
    added = messages[len(before) :]
    internal = [m for m in added if m.visibility == Message.Visibility.INTERNAL]
    public = [m for m in added if m.visibility == Message.Visibility.PUBLIC]
    assert [(m.role, m.sender_id, m.body) for m in internal] == [
        ("agent", agent.user_id, f"Transfer note: {note}")
    ]
    assert [(m.role, m.body) for m in public] == [
        ("system", "You are being transferred to another agent. Please stay in the chat.")
    ]
    # The visitor's view: the neutral line only; the note is nowhere in what was sent to it.
    visitor_view = selectors.visitor_messages_after(conversation=conversation, after_seq=0)
    assert note not in json.dumps([m.body for m in visitor_view])
    to_visitor = broadcasts.to(events.visitor_group(conversation.pk))
    assert [f["body"] for f in to_visitor if f["type"] == "message"] == [public[0].body]
    assert "VIP" not in json.dumps(to_visitor) and "refund" not in json.dumps(to_visitor)
    # The new agent is told why, staff-side.
    offer = next(
        f for f in broadcasts.to(events.agent_group(second_agent.user_id)) if f["type"] == "offer"
    )
    assert offer["transfer_note"] == note
    assert {
        "type": "unassigned",
        "conversation_id": conversation.pk,
        "reason": "transferred",
    } in broadcasts.to(events.agent_group(agent.user_id))

    accept(second_agent, conversation)
    conversation = fresh(conversation)
    assert (
        conversation.status == Conversation.Status.ACTIVE
        and conversation.assigned_at == assigned_at
    )
    assert held(agent) == []


def test_transfer_to_a_department_requeues_there_and_records_intervals(
    agent, department, other_department, make_agent, broadcasts
):
    online(agent)
    conversation = _active_chat(agent, department)
    carol = make_agent("carol", "Carol Agent", [other_department])
    with broadcasts.during():
        assignment.transfer(
            agent=agent, conversation_id=conversation.pk, to_department_id=other_department.pk
        )
    conversation = fresh(conversation)
    # Nobody online in Billing: the chat waits there, first in line.
    assert conversation.department_id == other_department.pk
    assert conversation.status == Conversation.Status.QUEUED and conversation.agent_id is None
    assert assignment.queue_position_of(conversation) == 1
    [first] = assignments(conversation)
    assert first.end_reason == Assignment.EndReason.TRANSFERRED and first.ended_at is not None
    # No note, no internal message; the visitor gets the neutral line.
    assert not Message.objects.filter(conversation=conversation, visibility="internal").exists()
    to_visitor = broadcasts.to(events.visitor_group(conversation.pk))
    assert any(
        f["type"] == "conversation" and f["status"] == "queued" and f["department"] == "Billing"
        for f in to_visitor
    )
    online(carol)
    first, second = assignments(fresh(conversation))
    assert second.agent_id == carol.pk and fresh(conversation).agent_id == carol.pk
    assert second.offered_at >= first.ended_at


def test_transfer_refusals_change_nothing(agent, second_agent, department):
    online(agent)
    conversation = _active_chat(agent, department)
    before = (
        list(Message.objects.values_list("pk", flat=True)),
        list(Assignment.objects.values_list("pk", "ended_at")),
    )
    cases = [
        ({"to_agent_id": second_agent.user_id}, "at_capacity"),  # Bob is offline
        ({"to_agent_id": agent.user_id}, "unknown_agent"),
        ({"to_department_id": 10**9}, "unknown_department"),
        ({}, "invalid"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ChatError) as exc:
            assignment.transfer(agent=agent, conversation_id=conversation.pk, note="n", **kwargs)
        assert exc.value.code == code
    with pytest.raises(ChatError) as exc:
        assignment.transfer(
            agent=second_agent, conversation_id=conversation.pk, to_department_id=department.pk
        )
    assert exc.value.code == "not_found"
    assert (
        list(Message.objects.values_list("pk", flat=True)),
        list(Assignment.objects.values_list("pk", "ended_at")),
    ) == before
    assert fresh(conversation).status == Conversation.Status.ACTIVE


# --- presence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [AgentProfile.Presence.OFFLINE, AgentProfile.Presence.AWAY])
def test_an_agent_stepping_away_withdraws_offers_but_keeps_active_chats(
    agent, second_agent, department, status
):
    online(agent)
    active = _active_chat(agent, department)
    ringing = new_chat(department)
    assert fresh(ringing).agent_id == agent.pk
    assignment.set_presence(agent=agent, status=status)
    [withdrawn] = assignments(ringing)
    assert withdrawn.end_reason == Assignment.EndReason.WITHDRAWN and withdrawn.accepted_at is None
    assert fresh(ringing).status == Conversation.Status.QUEUED
    assert fresh(active).status == Conversation.Status.ACTIVE and fresh(active).agent_id == agent.pk
    online(second_agent)
    assert fresh(ringing).agent_id == second_agent.pk


def test_a_lost_agent_is_set_offline_and_its_chats_requeued(
    agent, second_agent, department, settings
):
    Department.objects.filter(pk=department.pk).update(
        accept_timeout_seconds=600
    )  # no offer timeout here
    online(agent)
    active = _active_chat(agent, department)
    ringing = new_chat(department)
    last_seen = timezone.now()
    AgentProfile.objects.filter(pk=agent.pk).update(last_seen_at=last_seen)
    now = last_seen + timedelta(seconds=settings.CHAT_AGENT_GRACE_SECONDS - 1)
    Visitor.objects.update(last_seen_at=now)
    assert services.sweep(now=now)["agents_lost"] == 0

    now = last_seen + timedelta(seconds=settings.CHAT_AGENT_GRACE_SECONDS + 1)
    Visitor.objects.update(last_seen_at=now)  # the visitors are still there
    assert services.sweep(now=now)["agents_lost"] == 1
    alice = fresh(agent)
    assert alice.presence == AgentProfile.Presence.OFFLINE and alice.presence_changed_at == now
    for conversation in (active, ringing):
        conversation = fresh(conversation)
        assert conversation.status == Conversation.Status.QUEUED and conversation.agent_id is None
        [lost] = assignments(conversation)
        assert lost.end_reason == Assignment.EndReason.AGENT_LOST and lost.ended_at == now
    # The visitor of the active chat is told, neutrally; the ringing one had nothing to be told.
    assert (
        Message.objects.filter(
            conversation=active, role="system", visibility="public", body__contains="disconnected"
        ).count()
        == 1
    )
    assert not Message.objects.filter(conversation=ringing, body__contains="disconnected").exists()
    # Both wait in the order they first queued, and the next agent gets them.
    assert [assignment.queue_position_of(fresh(c)) for c in (active, ringing)] == [1, 2]
    AgentProfile.objects.filter(pk=second_agent.pk).update(last_seen_at=now)
    online(second_agent)
    assert held(second_agent) == sorted([active.pk, ringing.pk])


# --- visitors who leave -------------------------------------------------------------------------


def _visitor_left(conversation: Conversation, at) -> None:
    Visitor.objects.filter(pk=conversation.visitor_id).update(last_seen_at=at)


def test_visitor_gone_while_queued_is_abandoned(department, settings, broadcasts):
    conversation = new_chat(department)
    behind = new_chat(department)
    left_at = timezone.now()
    _visitor_left(conversation, left_at)
    Visitor.objects.filter(pk=behind.visitor_id).update(last_seen_at=left_at + timedelta(hours=1))
    grace = settings.CHAT_VISITOR_GRACE_SECONDS
    assert grace == 60
    assert services.sweep(now=left_at + timedelta(seconds=grace - 1))["visitors_left"] == 0
    assert fresh(conversation).status == Conversation.Status.QUEUED

    now = left_at + timedelta(seconds=grace + 1)
    with broadcasts.during():
        assert services.sweep(now=now)["visitors_left"] == 1
    conversation = fresh(conversation)
    assert conversation.status == Conversation.Status.ABANDONED
    assert conversation.ended_by == Conversation.EndedBy.SYSTEM
    assert conversation.queued_at is not None and conversation.assigned_at is None
    assert conversation.first_agent_reply_at is None
    assert conversation.queued_at <= conversation.ended_at == now
    assert not Assignment.objects.filter(conversation=conversation).exists()
    # The chat behind moves up and is told so.
    assert assignment.queue_position_of(fresh(behind)) == 1
    assert broadcasts.to(events.visitor_group(behind.pk))[-1]["position"] == 1


def test_visitor_gone_while_offered_is_missed(agent, department, settings):
    Department.objects.filter(pk=department.pk).update(accept_timeout_seconds=600)
    online(agent)
    conversation = new_chat(department)
    [offer] = assignments(conversation)
    _visitor_left(conversation, offer.offered_at)
    now = offer.offered_at + timedelta(seconds=settings.CHAT_VISITOR_GRACE_SECONDS + 1)
    services.sweep(now=now)
    conversation = fresh(conversation)
    assert conversation.status == Conversation.Status.MISSED and conversation.ended_at == now
    assert conversation.ended_by == Conversation.EndedBy.SYSTEM and conversation.assigned_at is None
    [interval] = assignments(conversation)
    assert interval.end_reason == Assignment.EndReason.WITHDRAWN
    assert interval.accepted_at is None and interval.ended_at == now
    assert held(agent) == []


def test_visitor_who_left_while_ringing_is_missed_even_after_the_offer_timed_out(
    agent, department, settings
):
    """The sweeper runs every few seconds, so the offer times out (30 s) before the visitor's grace
    (60 s) is over. What counts is what the chat was doing when the visitor left."""
    online(agent)
    conversation = new_chat(department)
    [offer] = assignments(conversation)
    _visitor_left(conversation, offer.offered_at)
    step = timedelta(seconds=settings.CHAT_SWEEP_INTERVAL_SECONDS)
    now = offer.offered_at
    while fresh(conversation).is_open:
        now += step
        services.sweep(now=now)
        assert now < offer.offered_at + timedelta(seconds=settings.CHAT_VISITOR_GRACE_SECONDS + 10)
    assert fresh(conversation).status == Conversation.Status.MISSED


def test_visitor_who_left_while_queued_is_abandoned_even_if_offered_later(
    agent, department, settings
):
    conversation = new_chat(department)
    left_at = timezone.now() - timedelta(seconds=1)
    _visitor_left(conversation, left_at)
    online(agent)  # an agent comes online after the visitor left: the chat rings for nobody
    assert fresh(conversation).status == Conversation.Status.OFFERED
    Department.objects.filter(pk=department.pk).update(accept_timeout_seconds=600)
    services.sweep(now=left_at + timedelta(seconds=settings.CHAT_VISITOR_GRACE_SECONDS + 1))
    assert fresh(conversation).status == Conversation.Status.ABANDONED


def test_a_visitor_with_a_heartbeat_is_never_swept(agent, department, settings):
    online(agent)
    conversation = new_chat(department)
    accept(agent, conversation)
    start = timezone.now()
    for minute in range(1, 30):
        now = start + timedelta(minutes=minute)
        Visitor.objects.filter(pk=conversation.visitor_id).update(
            last_seen_at=now - timedelta(seconds=20)
        )
        AgentProfile.objects.filter(pk=agent.pk).update(last_seen_at=now - timedelta(seconds=20))
        services.sweep(now=now)
    assert fresh(conversation).status == Conversation.Status.ACTIVE


def test_visitor_ending_a_waiting_chat_themselves(agent, department):
    queued = new_chat(department)
    ended = services.end_by_visitor(visitor=queued.visitor)
    assert (ended.status, ended.ended_by) == (
        Conversation.Status.ABANDONED,
        Conversation.EndedBy.VISITOR,
    )
    online(agent)
    ringing = new_chat(department)
    ended = services.end_by_visitor(visitor=ringing.visitor)
    assert (ended.status, ended.ended_by) == (
        Conversation.Status.MISSED,
        Conversation.EndedBy.VISITOR,
    )
    [interval] = assignments(ringing)
    assert interval.end_reason == Assignment.EndReason.WITHDRAWN and interval.accepted_at is None
