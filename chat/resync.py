"""The catch-up of all a process' chat sockets after a channel-layer outage, read in a few queries.

When the layer comes back (chat/layer_watch.py), every socket of the process has to be told what
it missed. Read per socket, that was a few queries each (a visitor's chat, its messages after the
last seq the socket holds, the authors' names; an agent's `state`, then the `history` its client
asks for with `sync`): 200 sockets per process queued about 1,500 queries on a PostgreSQL that,
on a busy machine, answered each slowly, and clients caught up 12-18 s after Redis was back
(docs/benchmarks.md, "Chaos"). Here the same frames are built for all sockets at once: a handful
of queries whatever the number of sockets.

Each socket is described by what it follows when the watch asks (`VisitorSocket`,
`AgentSocket`); the answer for a socket is only used if it still follows exactly that when its
catch-up runs (the consumers check), because the frames were read before the socket's task sent
them. A socket that changed meanwhile, or that this module cannot answer in full (a chat the
visitor's other tab started, more than a page of history, a queued chat), gets no entry and
catches up on its own, as before. The frames are the same as those the per-socket path builds,
from the same builders and the same visibility rules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from chat import assignment, frames, selectors
from chat.models import AgentProfile, Conversation, Department, Message
from chat.pipeline import display_names

# Conditions per query at most: SQLite limits an expression's depth (1,000).
CHUNK = 200


@dataclass(frozen=True)
class VisitorSocket:
    key: str  # the socket's channel name
    visitor_id: int
    conversation_id: int  # the chat it follows
    after_seq: int  # every public message up to this one went to it


@dataclass(frozen=True)
class AgentSocket:
    key: str
    profile_id: int
    user_id: int
    conversations: frozenset[int]  # the chats it holds (not the ones it only helps in)
    department_ids: frozenset[int]
    after: dict[int, int] = field(default_factory=dict, hash=False)  # chat -> every message up to it went


@dataclass(frozen=True)
class CatchUp:
    """The frames for one socket, in order, and what it followed when they were read."""

    follows: Any
    frames: list[dict[str, Any]]
    after: dict[int, int]  # chat -> the mark each history starts after
    profile: AgentProfile | None = None  # an agent's, as read with its state


def visitor_catch_ups(sockets: list[VisitorSocket]) -> dict[str, CatchUp]:
    """For each socket whose chat is still its visitor's current one: the public messages after
    its mark (`history`), then the chat as it is now (`conversation`), as `layer_resync` sends them."""
    if not sockets:
        return {}
    chats = {c.pk: c for c in Conversation.objects.filter(pk__in={s.conversation_id for s in sockets})
             .select_related("department", "agent")}
    # A socket whose visitor has an open chat other than the socket's (another tab started it)
    # gets all of that chat: the per-socket path does it, joining its group before reading.
    open_chats: dict[int, set[int]] = defaultdict(set)
    for visitor_id, chat_id in Conversation.objects.filter(
        visitor_id__in={s.visitor_id for s in sockets}, status__in=Conversation.OPEN_STATUSES,
    ).values_list("visitor_id", "pk"):
        open_chats[visitor_id].add(chat_id)
    answerable = [
        s for s in sockets
        if (chat := chats.get(s.conversation_id)) is not None and chat.visitor_id == s.visitor_id
        and not open_chats[s.visitor_id] - {s.conversation_id} and chat.status != Conversation.Status.QUEUED
    ]
    # Public messages only: what a visitor's history may ever hold (selectors.visitor_messages_after).
    messages = _messages([Q(conversation_id=s.conversation_id, public_seq__gt=s.after_seq,
                            visibility=Message.Visibility.PUBLIC) for s in answerable], order="public_seq")
    names = display_names([m.sender_id for ms in messages.values() for m in ms if m.sender_id])
    answers = {}
    for socket in answerable:
        chat = chats[socket.conversation_id]
        mine = [m for m in messages.get(socket.conversation_id, []) if m.public_seq > socket.after_seq]
        if len(mine) >= selectors.HISTORY_PAGE:
            continue  # paged by the per-socket path
        history = {
            "type": "history",
            "conversation_id": chat.pk,
            "messages": [frames.visitor_message_frame(m, author=names.get(m.sender_id)) for m in mine],
            "last_seq": chat.last_public_seq,
        }
        state = frames.visitor_conversation_frame(chat, queue_position=None)
        answers[socket.key] = CatchUp(follows=socket.conversation_id, frames=[history, state],
                                     after={socket.conversation_id: socket.after_seq})
    return answers


def agent_catch_ups(sockets: list[AgentSocket]) -> dict[str, CatchUp]:
    """For each agent socket that still holds the chats and departments it held: a fresh `state`
    (listing in `synced` the chats whose history follows), then a `history` per held chat after
    the socket's mark, so its client need not ask with `sync`."""
    if not sockets:
        return {}
    profiles = {p.pk: p for p in AgentProfile.objects.filter(pk__in={s.profile_id for s in sockets})
                .prefetch_related("departments")}
    # As AgentConsumer._state lists them: the held chats, then the ended ones awaiting a disposition.
    held: dict[int, list[Conversation]] = defaultdict(list)
    for chat in (Conversation.objects.filter(agent_id__in=list(profiles), status__in=Conversation.HELD_STATUSES)
                 .select_related("department", "agent", "visitor").order_by("created_at")):
        held[chat.agent_id].append(chat)
    for chat in selectors.awaiting_close_of(agent_ids=list(profiles)):
        held[chat.agent_id].append(chat)
    answerable = []
    for socket in sockets:
        profile = profiles.get(socket.profile_id)
        if profile is None:
            continue
        departments = list(profile.departments.all())  # in the order AgentConsumer._state lists them
        if ({c.pk for c in held[profile.pk]} != socket.conversations
                or {d.pk for d in departments} != socket.department_ids):
            continue  # changed during the outage: joined its groups again, then read, on its own
        answerable.append((socket, profile, departments))
    if not answerable:
        return {}
    queues = {d: assignment.queue_positions(department_id=d)
              for d in {d.pk for _, _, departments in answerable for d in departments}}
    username = f"user__{get_user_model().USERNAME_FIELD}"
    everyone = list(AgentProfile.objects.order_by("display_name", "pk").values(
        "pk", "user_id", "display_name", "presence", username))
    all_departments = [{"id": d.pk, "name": d.name} for d in Department.objects.all()]
    # A held chat has one agent, so one user's view of it (two tabs: the same user): read from
    # the lower mark, with that user's visibility (selectors.staff_messages_after's rule).
    wanted: dict[int, tuple[int, int]] = {}
    for socket, _, _ in answerable:
        for chat_id in socket.conversations:
            after = socket.after.get(chat_id, 0)
            wanted[chat_id] = (socket.user_id, min(after, wanted.get(chat_id, (0, after))[1]))
    messages = _messages([Q(conversation_id=c, seq__gt=after) & selectors.staff_visible(user_id=user_id)
                          for c, (user_id, after) in wanted.items()], order="seq")
    names = display_names([m.sender_id for ms in messages.values() for m in ms if m.sender_id])
    answers = {}
    for socket, profile, departments in answerable:
        chats = held[profile.pk]
        histories = []
        for chat in chats:
            after = socket.after.get(chat.pk, 0)
            mine = [m for m in messages.get(chat.pk, []) if m.seq > after]
            if len(mine) >= selectors.HISTORY_PAGE:
                break
            histories.append({
                "type": "history",
                "conversation_id": chat.pk,
                "conversation": frames.staff_conversation_frame(chat),
                "messages": [frames.staff_message_frame(m, author=names.get(m.sender_id)) for m in mine],
                "last_seq": chat.last_seq,
            })
        else:
            queue = [frames.queue_entry(c, i) for d in departments for i, c in enumerate(queues[d.pk], start=1)]
            others = [a for a in everyone if a["pk"] != profile.pk]
            state = frames.agent_state(profile, user_id=socket.user_id, departments=departments, queue=queue,
                                       held=chats, agents=others, all_departments=all_departments,
                                       username_key=username)
            state["synced"] = [c.pk for c in chats]
            answers[socket.key] = CatchUp(follows=(socket.conversations, socket.department_ids),
                                          frames=[state, *histories], after=socket.after, profile=profile)
    return answers


def _messages(conditions: list[Q], *, order: str) -> dict[int, list[Message]]:
    """Messages matching any of the conditions, grouped by chat, each chat's in `order`."""
    grouped: dict[int, list[Message]] = defaultdict(list)
    for start in range(0, len(conditions), CHUNK):
        chunk = conditions[start:start + CHUNK]
        for message in Message.objects.filter(reduce(or_, chunk)).order_by("conversation_id", order):
            grouped[message.conversation_id].append(message)
    return grouped
