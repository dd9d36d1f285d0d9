"""Routing races against real PostgreSQL: many threads, each with its own connection, at once.

The point is the row locking in chat/assignment.py and chat/pipeline.py: take any of the
select_for_update calls away and one of these tests fails (an IntegrityError from the unique
indexes, an agent over its maximum, a chat left waiting next to a free agent, or a conversation
whose status and assignment disagree).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from chat import assignment
from chat.errors import Conflict, NotFound
from chat.models import AgentProfile, Assignment, Conversation, Department, Message
from chat.pipeline import Inbound, run
from chat.services import end_conversation
from tests.conftest import real_mode
from tests.factories import AgentFactory, ConversationFactory, DepartmentFactory, UserFactory

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]

THREADS = 8
ROUNDS = 30
ONLINE = AgentProfile.Presence.ONLINE
AWAY = AgentProfile.Presence.AWAY
OFFERED = Conversation.Status.OFFERED
ACTIVE = Conversation.Status.ACTIVE
QUEUED = Conversation.Status.QUEUED
# What a service may refuse when another thread got there first; anything else is a failure.
EXPECTED_REFUSALS = (NotFound, Conflict)


@pytest.fixture(autouse=True)
def _postgres_only(settings):
    if not real_mode():
        pytest.skip("needs PostgreSQL: the point is its row locks")
    # The events these services send after commit are not what is tested here (the two-process
    # test covers channels-redis). Sent through Redis from eight threads, each send opens its own
    # event loop and connection: three times the run time, and the same findings.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@dataclass
class Outcome:
    value: Any = None
    refused: Exception | None = None
    error: str | None = None


@dataclass
class Race:
    """Threads that start each step together (a barrier) and record what went wrong."""

    parties: int
    barrier: threading.Barrier = field(init=False)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.barrier = threading.Barrier(self.parties, timeout=60)

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def call(self, fn: Callable[[], Any]) -> Outcome:
        try:
            return Outcome(value=fn())
        except EXPECTED_REFUSALS as exc:
            return Outcome(refused=exc)
        except Exception:  # noqa: BLE001 - every unexpected error is a finding
            error = traceback.format_exc()
            self.fail(error)
            return Outcome(error=error)

    def run(self, targets: list[Callable[[Race, int], Any]], *, timeout: float = 120) -> list[Any]:
        assert len(targets) == self.parties
        results: list[Any] = [None] * self.parties

        def body(index: int) -> None:
            try:
                results[index] = targets[index](self, index)
            except threading.BrokenBarrierError:
                self.fail(f"thread {index}: barrier broken (another thread failed or hung)")
            except Exception:  # noqa: BLE001
                self.fail(f"thread {index}:\n{traceback.format_exc()}")
                self.barrier.abort()
            finally:
                # Each thread had its own connection; leave none open for the flush at teardown.
                connections.close_all()

        threads = [
            threading.Thread(target=body, args=(i,), name=f"race-{i}") for i in range(self.parties)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} still running after {timeout}s"
        return results


def race_once(*fns: Callable[[], Any]) -> tuple[list[Outcome], list[str]]:
    """Run each function in its own thread, released together."""
    race = Race(len(fns))

    def target(r: Race, index: int) -> Outcome:
        r.barrier.wait()
        return r.call(fns[index])

    outcomes = race.run([target] * len(fns))
    return outcomes, race.errors


# --- invariants, each one SQL statement so it reads one consistent snapshot ---------------


def _tables() -> dict[str, str]:
    return {
        "agent": AgentProfile._meta.db_table,
        "conv": Conversation._meta.db_table,
        "asg": Assignment._meta.db_table,
        "msg": Message._meta.db_table,
    }


INVARIANTS = {
    "agent holds more than max_chats": """
        SELECT a.id, a.max_chats, count(*) FROM {agent} a
        JOIN {conv} c ON c.agent_id = a.id AND c.status IN ('offered', 'active')
        GROUP BY a.id, a.max_chats HAVING count(*) > a.max_chats""",
    "agent has more open assignments than max_chats": """
        SELECT a.id, a.max_chats, count(*) FROM {agent} a
        JOIN {asg} s ON s.agent_id = a.id AND s.ended_at IS NULL
        GROUP BY a.id, a.max_chats HAVING count(*) > a.max_chats""",
    "conversation with more than one open assignment": """
        SELECT conversation_id, count(*) FROM {asg} WHERE ended_at IS NULL
        GROUP BY conversation_id HAVING count(*) > 1""",
    "held conversation whose agent has no open assignment": """
        SELECT c.id, c.status, c.agent_id FROM {conv} c WHERE c.status IN ('offered', 'active')
        AND NOT EXISTS (SELECT 1 FROM {asg} s WHERE s.conversation_id = c.id
                        AND s.ended_at IS NULL AND s.agent_id = c.agent_id)""",
    "open assignment on a conversation not held by that agent": """
        SELECT s.id, s.conversation_id, s.agent_id, c.status, c.agent_id FROM {asg} s
        JOIN {conv} c ON c.id = s.conversation_id
        WHERE s.ended_at IS NULL AND (c.status NOT IN ('offered', 'active') OR c.agent_id IS DISTINCT FROM s.agent_id)""",
    "status disagrees with acceptance": """
        SELECT c.id, c.status, s.accepted_at FROM {conv} c
        JOIN {asg} s ON s.conversation_id = c.id AND s.ended_at IS NULL
        WHERE (c.status = 'offered' AND s.accepted_at IS NOT NULL)
           OR (c.status = 'active' AND (s.accepted_at IS NULL OR c.assigned_at IS NULL))""",
    "ended assignment that was accepted and then timed out or declined": """
        SELECT id, conversation_id, end_reason FROM {asg}
        WHERE accepted_at IS NOT NULL AND end_reason IN ('timed_out', 'declined', 'withdrawn')""",
    "sequence numbers with a gap or not matching last_seq": """
        SELECT c.id, c.last_seq, count(m.id), max(m.seq) FROM {conv} c
        LEFT JOIN {msg} m ON m.conversation_id = c.id
        GROUP BY c.id, c.last_seq
        HAVING count(m.id) <> c.last_seq OR coalesce(max(m.seq), 0) <> c.last_seq""",
}


def violations(conn=None) -> dict[str, list[tuple]]:
    conn = conn or connection
    found = {}
    with conn.cursor() as cursor:
        for name, sql in INVARIANTS.items():
            cursor.execute(sql.format(**_tables()))
            rows = cursor.fetchall()
            if rows:
                found[name] = rows
    return found


def held_over_time(agent_ids: list[int]) -> list[str]:
    """From the assignment history: at no instant did an agent hold more than max_chats.

    An interval is [offered_at, ended_at). A slot is only reused after the commit that freed it,
    and the next offer takes its time after locking the agent, so intervals of a correct run
    never overlap beyond the maximum.
    """
    problems = []
    for agent in AgentProfile.objects.filter(pk__in=agent_ids):
        edges = []
        for offered_at, ended_at in Assignment.objects.filter(agent=agent).values_list(
            "offered_at", "ended_at"
        ):
            edges.append((offered_at, 1))
            if ended_at is not None:
                edges.append((ended_at, -1))
        held = 0
        for at, delta in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts at a tie
            held += delta
            if held > agent.max_chats:
                problems.append(f"{agent} held {held} > {agent.max_chats} at {at.isoformat()}")
                break
    return problems


# --- the big race ----------------------------------------------------------------------------


def _world() -> tuple[list[Department], list[AgentProfile]]:
    general = DepartmentFactory(name="General", slug="general")
    billing = DepartmentFactory(name="Billing", slug="billing")
    memberships = [
        [general],
        [general],
        [billing],
        [billing],
        [general, billing],
        [general, billing],
    ]
    agents = [
        AgentFactory(
            user=UserFactory(username=f"racer{i}"),
            display_name=f"Racer {i}",
            departments=deps,
            max_chats=2,
            presence=ONLINE if i % 3 else AWAY,
        )
        for i, deps in enumerate(memberships)
    ]
    start = timezone.now() - timedelta(minutes=10)
    for i in range(40):
        at = start + timedelta(seconds=i)
        ConversationFactory(
            department=general if i % 2 else billing, created_at=at, subject=f"chat {i}"
        )
    return [general, billing], agents


def test_many_threads_routing_never_double_assign_or_overfill():
    departments, agents = _world()
    department_ids = [d.pk for d in departments]
    agent_ids = [a.pk for a in agents]
    ends_left = [8]  # keep most chats waiting, so "slots stay filled" has something to test
    ends_lock = threading.Lock()
    stop_monitor = threading.Event()
    monitor_findings: list[str] = []

    def monitor() -> None:
        try:
            while not stop_monitor.is_set():
                for name, rows in violations().items():
                    monitor_findings.append(f"during the race: {name}: {rows[:5]}")
                if monitor_findings:
                    return
                time.sleep(0.002)
        finally:
            connections.close_all()

    def pick_offered(rng: random.Random) -> tuple[int, int] | None:
        offered = list(
            Conversation.objects.filter(status=OFFERED).order_by("pk").values_list("pk", "agent_id")
        )
        # Mostly the oldest offer, so several threads go for the same one.
        return (offered[0] if rng.random() < 0.6 else rng.choice(offered)) if offered else None

    def accept(rng: random.Random) -> None:
        picked = pick_offered(rng)
        if picked:
            assignment.accept_offer(
                agent=AgentProfile.objects.get(pk=picked[1]), conversation_id=picked[0]
            )

    def end_one(rng: random.Random) -> None:
        with ends_lock:
            if ends_left[0] <= 0:
                return accept(rng)
            ends_left[0] -= 1
        active = list(Conversation.objects.filter(status=ACTIVE).values_list("pk", flat=True))
        if active:
            end_conversation(
                conversation_id=rng.choice(active), ended_by=Conversation.EndedBy.AGENT
            )

    def presence(rng: random.Random) -> None:
        agent = AgentProfile.objects.get(pk=rng.choice(agent_ids))
        assignment.set_presence(agent=agent, status=ONLINE if rng.random() < 0.7 else AWAY)

    operations: dict[str, Callable[[random.Random], Any]] = {
        "dispatch": lambda rng: assignment.dispatch(department_id=rng.choice(department_ids)),
        "offer_next": lambda rng: assignment.offer_next_in_queue(
            department_id=rng.choice(department_ids)
        ),
        "accept": accept,
        "presence": presence,
        "end": end_one,
    }
    # Each round every thread does the same kind of thing at once (a storm), or a mix.
    plan_rng = random.Random(20240503)
    plan = [
        plan_rng.choice(["dispatch", "offer_next", "accept", "presence", "mixed", "mixed", "end"])
        for _ in range(ROUNDS)
    ]

    def target(race: Race, index: int) -> None:
        rng = random.Random(index * 7919 + 1)
        for kind in plan:
            op = rng.choice(list(operations)) if kind == "mixed" else kind
            race.barrier.wait()
            race.call(lambda op=op: operations[op](rng))
        # Last round: everyone comes online while dispatches run; then the queue must be drained
        # into every free slot.
        race.barrier.wait()
        if index < len(agent_ids):
            race.call(
                lambda: assignment.set_presence(
                    agent=AgentProfile.objects.get(pk=agent_ids[index]), status=ONLINE
                )
            )
        else:
            race.call(lambda: assignment.dispatch(department_id=department_ids[index % 2]))

    watcher = threading.Thread(target=monitor, name="monitor")
    watcher.start()
    race = Race(THREADS)
    try:
        race.run([target] * THREADS)
    finally:
        stop_monitor.set()
        watcher.join(30)

    assert race.errors == [], "\n\n".join(race.errors[:5])
    assert monitor_findings == []
    assert violations() == {}
    assert held_over_time(agent_ids) == []

    # Nobody waits while an online agent of their department has a free slot.
    for department in departments:
        waiting = Conversation.objects.filter(department=department, status=QUEUED).count()
        if not waiting:
            continue
        for agent in AgentProfile.objects.filter(departments=department, presence=ONLINE):
            held = assignment.held_count(agent)
            assert held == agent.max_chats, (
                f"{agent} holds {held}/{agent.max_chats} while {waiting} wait in {department}"
            )
    assert not Conversation.objects.filter(status=OFFERED).exclude(agent__presence=ONLINE).exists()

    # FIFO: no chat that was never offered waits behind one that was (no declines in this race).
    for department in departments:
        offered_ids = Assignment.objects.filter(conversation__department=department).values(
            "conversation_id"
        )
        ever_offered = Conversation.objects.filter(pk__in=offered_ids)
        never_offered_waiting = Conversation.objects.filter(
            department=department, status=QUEUED
        ).exclude(pk__in=offered_ids)
        newest_offered = (
            ever_offered.order_by("-queue_order_at")
            .values_list("queue_order_at", flat=True)
            .first()
        )
        oldest_waiting = (
            never_offered_waiting.order_by("queue_order_at")
            .values_list("queue_order_at", flat=True)
            .first()
        )
        if newest_offered and oldest_waiting:
            assert oldest_waiting > newest_offered, (
                f"{department}: a newer chat was offered before an older one"
            )

    # The race did real work: offers, acceptances, ends, and chats still waiting at the end.
    assert Assignment.objects.count() >= 12
    assert Conversation.objects.filter(status=ACTIVE).count() >= 4
    assert Conversation.objects.filter(status=QUEUED).exists()


def test_agents_in_many_departments_never_exceed_their_maximum():
    """Dispatchers of different departments do not share a queue lock; only the agent row lock
    keeps two of them from filling the same last slot."""
    departments = [DepartmentFactory(name=f"Desk {i}", slug=f"desk{i}") for i in range(THREADS)]
    agents = [
        AgentFactory(
            user=UserFactory(username=f"shared{i}"),
            departments=departments,
            max_chats=2,
            presence=ONLINE,
        )
        for i in range(2)
    ]
    capacity = sum(a.max_chats for a in agents)
    for attempt in range(10):
        for department in departments:
            for _ in range(2):
                ConversationFactory(department=department)
        outcomes, errors = race_once(
            *[lambda d=d: assignment.dispatch(department_id=d.pk) for d in departments]
        )
        assert errors == [], "\n\n".join(errors[:3])
        assert sum(o.value for o in outcomes) == capacity, f"attempt {attempt}"
        assert violations() == {}
        for agent in agents:
            assert assignment.held_count(agent) == agent.max_chats, f"attempt {attempt}: {agent}"
        # Clear the desks for the next attempt.
        Conversation.objects.filter(status__in=[OFFERED, QUEUED]).update(
            status=Conversation.Status.MISSED, agent=None, ended_at=timezone.now()
        )
        Assignment.objects.filter(ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=Assignment.EndReason.WITHDRAWN
        )


# --- two operations on the same conversation -------------------------------------------------


def _offered_conversation(
    agent: AgentProfile, department: Department, *, offered_ago: timedelta
) -> Conversation:
    now = timezone.now()
    conversation = ConversationFactory(
        department=department, created_at=now - offered_ago - timedelta(seconds=1)
    )
    conversation.status = OFFERED
    conversation.agent = agent
    conversation.save(update_fields=["status", "agent"])
    Assignment.objects.create(conversation=conversation, agent=agent, offered_at=now - offered_ago)
    return conversation


def _go_online(agent: AgentProfile) -> None:
    AgentProfile.objects.filter(pk=agent.pk).update(presence=ONLINE)


def test_accept_racing_offer_timeout_has_one_winner():
    department = DepartmentFactory(name="Quick", slug="quick", accept_timeout_seconds=1)
    agent = AgentFactory(
        user=UserFactory(username="ringing"), departments=[department], max_chats=50
    )
    for attempt in range(15):
        _go_online(agent)
        conversation = _offered_conversation(agent, department, offered_ago=timedelta(seconds=5))
        outcomes, errors = race_once(
            lambda pk=conversation.pk: assignment.accept_offer(agent=agent, conversation_id=pk),
            lambda: assignment.expire_offers(now=timezone.now()),
        )
        assert errors == [], "\n\n".join(errors)
        accepted, expired = outcomes[0].refused is None, outcomes[1].value
        conversation.refresh_from_db()
        (offer,) = Assignment.objects.filter(conversation=conversation, agent=agent)
        assert accepted != bool(expired), (
            f"attempt {attempt}: accepted={accepted} expired={expired}"
        )
        if accepted:
            assert conversation.status == ACTIVE and conversation.agent_id == agent.pk
            assert offer.ended_at is None and offer.accepted_at is not None
        else:
            assert conversation.status == QUEUED and conversation.agent_id is None
            assert offer.end_reason == Assignment.EndReason.TIMED_OUT and offer.accepted_at is None
            assert conversation.assigned_at is None
        assert violations() == {}


def test_end_racing_accept_has_one_consistent_result():
    department = DepartmentFactory(name="Racing", slug="racing")
    agent = AgentFactory(
        user=UserFactory(username="accepter"), departments=[department], max_chats=50
    )
    _go_online(agent)
    for attempt in range(15):
        conversation = _offered_conversation(agent, department, offered_ago=timedelta(seconds=1))
        outcomes, errors = race_once(
            lambda pk=conversation.pk: end_conversation(
                conversation_id=pk, ended_by=Conversation.EndedBy.VISITOR
            ),
            lambda pk=conversation.pk: assignment.accept_offer(agent=agent, conversation_id=pk),
        )
        assert errors == [], "\n\n".join(errors)
        accepted = outcomes[1].refused is None
        conversation.refresh_from_db()
        (offer,) = Assignment.objects.filter(conversation=conversation)
        assert offer.ended_at is not None and conversation.ended_at is not None
        if accepted:
            # Accepted first, then ended: a real chat that the visitor ended.
            assert conversation.status == Conversation.Status.ENDED, attempt
            assert (
                offer.accepted_at is not None
                and offer.end_reason == Assignment.EndReason.CONVERSATION_ENDED
            )
            assert conversation.assigned_at is not None
        else:
            # Ended while still ringing: missed, and the agent is not charged with it.
            assert conversation.status == Conversation.Status.MISSED, attempt
            assert offer.accepted_at is None and offer.end_reason == Assignment.EndReason.WITHDRAWN
            assert conversation.assigned_at is None
        assert violations() == {}


def test_concurrent_messages_get_gapless_sequence_and_dedupe_client_ids():
    department = DepartmentFactory(name="Chatty", slug="chatty")
    # 20 senders: 14 distinct client ids, six of them sent twice (a resend after a reconnect).
    client_ids = [f"c{i}" for i in range(14)] + [f"c{i}" for i in range(6)]
    for attempt in range(3):
        conversation = ConversationFactory(department=department)

        def send(i: int, conversation_id: int = conversation.pk):
            return run(
                Inbound(
                    conversation_id=conversation_id,
                    role=Message.Role.VISITOR,
                    body=f"message {i} ({client_ids[i]})",
                    client_id=client_ids[i],
                )
            )

        outcomes, errors = race_once(*[lambda i=i: send(i) for i in range(len(client_ids))])
        assert errors == [], f"attempt {attempt}:\n\n" + "\n\n".join(errors[:3])
        stored = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("seq", "client_id")
        )
        assert [seq for seq, _ in stored] == list(range(1, 15))
        assert sorted(cid for _, cid in stored) == sorted(set(client_ids))
        conversation.refresh_from_db()
        assert conversation.last_seq == 14
        # Both copies of a resent message answer with the one stored row.
        by_client = defaultdict(set)
        created = 0
        for i, outcome in enumerate(outcomes):
            message, was_created = outcome.value
            by_client[client_ids[i]].add(message.pk)
            created += was_created
        assert created == 14 and all(len(pks) == 1 for pks in by_client.values())
