"""The rule that must never break: what staff write for staff never reaches a visitor.

Canaries are planted in every staff-only channel the product has (internal notes, @tag notes and
the tagged helper's own notes, agent-to-agent direct messages, supervisor whispers during a
sit-in, transfer notes, ticket notes, a training scenario's supervisor notes), across a normal
chat with a transfer and a supervisor barge-in, a mock chat, a ticket made from the chat and an
offline message. Then everything a visitor can receive is collected: every frame of every
visitor socket (live, a second tab, a sync, a reconnect after the chat ended), every e-mail sent
to a visitor (transcript, ticket reply, offline confirmation), and every page of the URL conf as
a visitor reaches it (no login), with each id the scenario made. No canary may be in any of it.

Each canary is also checked to have reached the staff it was meant for, so a planting that
silently failed cannot make the test pass.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core import mail
from django.test import Client

from chat.models import Conversation, Message, Ticket, TicketMessage
from coaching import services as coaching_services
from coaching.models import Scenario
from tests.auth import staff_client
from tests.canary.harness import canary, leaks_in, mail_text, mails_to, walk_http
from tests.canary.scenario import (
    accept_offer,
    agent_socket,
    favour,
    make_cast,
    say,
    supervisor_socket,
    visitor_socket,
    welcome_token,
)

pytestmark = pytest.mark.django_db(transaction=True)

VERA = "vera@example.com"
OTTO = "otto@example.com"


def _ids() -> list[int]:
    ids: set[int] = set()
    for model in (Conversation, Ticket, Message, TicketMessage):
        ids |= set(model.objects.values_list("pk", flat=True))
    return sorted(ids)


async def test_no_staff_only_text_reaches_any_visitor_by_any_path(settings, eager_tasks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    cast = await database_sync_to_async(make_cast)()
    await database_sync_to_async(favour)(cast["alice"], over=[cast["bob"], cast["dora"]])
    planted: dict[str, str] = {}  # canary -> who must have received it (a recorder's name)

    def plant(where: str, seen_by: str) -> str:
        value = canary(where)
        planted[value] = seen_by
        return value

    alice = await agent_socket("alice")
    bob = await agent_socket("bob")
    carl = await agent_socket("carl")
    sam = await supervisor_socket("sam")
    staff = {"alice": alice, "bob": bob, "carl": carl, "sam": sam}

    # --- chat A: Vera with Alice, then transferred to Bob -------------------------------------
    vera = await visitor_socket()
    vera_token = welcome_token(vera)
    await vera.send(
        {
            "type": "start",
            "department": "support",
            "name": "Vera",
            "email": VERA,
            "message": "My prescription did not arrive",
            "client_id": "v-0",
        }
    )
    chat_a = await accept_offer(alice)
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    vera_tab2 = await visitor_socket(token=vera_token)  # a second tab, open all along

    await say(alice, chat_a, plant("internal-note", "alice"), visibility="internal")
    await say(
        alice, chat_a, f"@bob can you check this? {plant('tag-note', 'bob')}", visibility="internal"
    )
    await bob.until(lambda f: f["type"] == "mention" and f["conversation_id"] == chat_a)
    await bob.send({"type": "open", "conversation_id": chat_a})
    await bob.until(lambda f: f["type"] == "history" and f.get("helping"))
    await say(bob, chat_a, plant("helper-note", "alice"), visibility="internal")
    await alice.send(
        {
            "type": "dm",
            "to": cast["bob"].user_id,
            "body": plant("dm-alice-bob", "bob"),
            "client_id": "dm-1",
        }
    )
    await bob.send(
        {
            "type": "dm",
            "to": cast["alice"].user_id,
            "body": plant("dm-bob-alice", "alice"),
            "client_id": "dm-2",
        }
    )
    await bob.until(lambda f: f["type"] == "dm" and f["client_id"] == "dm-2")

    await sam.send({"type": "sit_in", "conversation_id": chat_a})
    await sam.until(lambda f: f["type"] == "history" and f["conversation_id"] == chat_a)
    await sam.send(
        {
            "type": "whisper",
            "conversation_id": chat_a,
            "body": plant("whisper-alice", "alice"),
            "client_id": "w-1",
        }
    )
    await sam.until(lambda f: f["type"] == "ack" and f["client_id"] == "w-1")
    await say(alice, chat_a, "Let me check that for you.")
    await say(vera, None, "Thank you")

    # Transfer with a note; Bob (already helping) takes the chat.
    await alice.send(
        {
            "type": "transfer",
            "conversation_id": chat_a,
            "to_agent": cast["bob"].user_id,
            "note": plant("transfer-note", "bob"),
        }
    )
    await alice.until(lambda f: f["type"] == "unassigned" and f["conversation_id"] == chat_a)
    await accept_offer(bob)
    await say(bob, chat_a, plant("note-after-transfer", "bob"), visibility="internal")
    await sam.send(
        {
            "type": "whisper",
            "conversation_id": chat_a,
            "body": plant("whisper-bob", "bob"),
            "client_id": "w-2",
        }
    )
    await sam.until(lambda f: f["type"] == "ack" and f["client_id"] == "w-2")
    await sam.send({"type": "barge_in", "conversation_id": chat_a})
    await sam.send(
        {
            "type": "message",
            "conversation_id": chat_a,
            "body": "Your supervisor here: all is well.",
            "client_id": "s-1",
        }
    )
    await sam.until(lambda f: f["type"] == "ack" and f["client_id"] == "s-1")
    await say(bob, chat_a, "Bob here, I have your order.")
    await vera.until(
        lambda f: f.get("type") == "message" and f.get("body") == "Bob here, I have your order."
    )

    # A follow-up ticket from the chat, an internal note on it (as the back office adds one),
    # and a reply that is e-mailed to Vera.
    bob_http = await database_sync_to_async(staff_client)("bob")
    response = await database_sync_to_async(bob_http.post)(
        "/tickets/from-chat/", {"conversation_id": chat_a}
    )
    assert response.status_code == 200, response.content
    ticket_a = response.json()["ticket_id"]
    ticket_note = plant("ticket-note", "bob-http")
    await database_sync_to_async(
        lambda: TicketMessage.objects.create(
            ticket_id=ticket_a,
            kind=TicketMessage.Kind.NOTE,
            author=cast["bob"].user,
            body=ticket_note,
            created_at=Ticket.objects.get(pk=ticket_a).created_at,
        )
    )()
    response = await database_sync_to_async(bob_http.post)(
        f"/tickets/{ticket_a}/", {"body": "We sent a new parcel today."}
    )
    assert response.status_code == 302, response.content
    ticket_page = (
        await database_sync_to_async(bob_http.get)(f"/tickets/{ticket_a}/")
    ).content.decode()

    await bob.send({"type": "end", "conversation_id": chat_a})
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "ended")
    await vera.send({"type": "survey", "conversation_id": chat_a, "rating": 4, "comment": "ok"})
    await vera.until(lambda f: f["type"] == "survey_received")
    await vera.send({"type": "transcript", "conversation_id": chat_a, "email": VERA})
    await vera.until(lambda f: f["type"] == "transcript_sent")
    await vera.send({"type": "sync", "last_seq": 0})
    await vera.until(lambda f: f["type"] == "history")
    # Vera comes back later: reconnect and resume from nothing, and from the middle.
    vera_back = await visitor_socket(token=vera_token, last_seq=1)
    await vera_back.until(lambda f: f["type"] == "history")

    # --- chat B: a mock chat Sam plays as the visitor with Carl ---------------------------------
    scenario = await database_sync_to_async(Scenario.objects.create)(
        title="Double charge",
        opening_line="You charged me twice!",
        persona="Impatient.",
        supervisor_notes=plant("scenario-notes", "nobody"),
    )
    _mock, mock_token = await database_sync_to_async(coaching_services.start_mock_chat)(
        user=cast["sam"], scenario_id=scenario.pk, agent_id=cast["carl"].pk
    )
    mock_visitor = await visitor_socket(token=mock_token)
    chat_b = await accept_offer(carl)
    await say(carl, chat_b, plant("mock-internal-note", "carl"), visibility="internal")
    await sam.send({"type": "sit_in", "conversation_id": chat_b})
    await sam.until(lambda f: f["type"] == "history" and f["conversation_id"] == chat_b)
    await sam.send(
        {
            "type": "whisper",
            "conversation_id": chat_b,
            "body": plant("mock-whisper", "carl"),
            "client_id": "w-3",
        }
    )
    await sam.until(lambda f: f["type"] == "ack" and f["client_id"] == "w-3")
    await say(carl, chat_b, "I am sorry, I will refund one charge.")
    await mock_visitor.until(lambda f: f.get("body") == "I am sorry, I will refund one charge.")
    mock_back = await visitor_socket(token=mock_token, last_seq=0)
    await mock_back.until(lambda f: f["type"] == "history")

    # --- an offline message from Otto, with a staff note on its ticket and a reply -------------
    otto = await visitor_socket()
    await otto.send(
        {
            "type": "offline",
            "department": "billing",
            "name": "Otto",
            "email": OTTO,
            "message": "Call me back",
        }
    )
    received = await otto.until(lambda f: f["type"] == "offline_received")
    await database_sync_to_async(
        lambda: TicketMessage.objects.create(
            ticket_id=received["ticket_id"],
            kind=TicketMessage.Kind.NOTE,
            author=cast["carl"].user,
            body=plant("offline-ticket-note", "carl-http"),
            created_at=Ticket.objects.get(pk=received["ticket_id"]).created_at,
        )
    )()
    carl_http = await database_sync_to_async(staff_client)("carl")
    response = await database_sync_to_async(carl_http.post)(
        f"/tickets/{received['ticket_id']}/", {"body": "We will call you at 3."}
    )
    assert response.status_code == 302, response.content
    otto_page = (
        await database_sync_to_async(carl_http.get)(f"/tickets/{received['ticket_id']}/")
    ).content.decode()

    visitors = {
        "vera": vera,
        "vera-tab2": vera_tab2,
        "vera-back": vera_back,
        "mock-visitor": mock_visitor,
        "mock-back": mock_back,
        "otto": otto,
    }
    for rec in [*visitors.values(), *staff.values()]:
        await rec.settle()

    # --- planted where it was meant to go -----------------------------------------------------
    staff_text = {name: rec.text() for name, rec in staff.items()}
    staff_text["bob-http"] = ticket_page
    staff_text["carl-http"] = otto_page
    for value, seen_by in planted.items():
        if seen_by != "nobody":
            assert value in staff_text[seen_by], (
                f"{value} never reached {seen_by}: the planting failed"
            )

    # --- and nowhere a visitor can look ----------------------------------------------------------
    secrets = list(planted)
    leaks = leaks_in({f"socket of {name}": rec.text() for name, rec in visitors.items()}, secrets)

    visitor_mail = await database_sync_to_async(mails_to)([VERA, OTTO])
    kinds = " | ".join(m.subject for m in visitor_mail)
    assert "Transcript of your chat" in kinds and "We received your message" in kinds, kinds
    assert sum("[ticket" in m.subject for m in visitor_mail) == 2, kinds
    leaks += leaks_in(
        {f"mail '{m.subject}' to {m.to}": mail_text(m) for m in visitor_mail}, secrets
    )

    # Every page a visitor can open: the whole URL conf without a login, with every id made,
    # and the visitor page with each token (a visitor's page is the same for any token).
    ids = await database_sync_to_async(_ids)()
    anonymous = Client(raise_request_exception=False)
    pages = await database_sync_to_async(walk_http)(
        anonymous, ids, extra=[f"/chat/?token={vera_token}", f"/widget/demo/?token={mock_token}"]
    )
    assert "/chat/" in pages and "/widget/config/" in pages
    leaks += leaks_in(pages, secrets)
    config = await database_sync_to_async(anonymous.get)(
        "/widget/config/", HTTP_ORIGIN="http://127.0.0.1"
    )
    leaks += leaks_in({"widget config": config.content.decode()}, secrets)

    assert leaks == []

    # The staff-only messages are really there, so the visitor's silence means filtering works.
    hidden = await database_sync_to_async(
        lambda: (
            Message.objects.filter(conversation_id__in=[chat_a, chat_b])
            .exclude(visibility="public")
            .count()
        )
    )()
    assert hidden >= 9

    for rec in [*visitors.values(), *staff.values()]:
        await rec.comm.disconnect()
