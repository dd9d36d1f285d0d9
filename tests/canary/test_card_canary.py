"""A card number a visitor types never shows unmasked anywhere, with live masking on (the default).

The visitor types a fresh, Luhn-valid canary card into every field it has: the page address its
widget reports, the pre-chat name and first message, chat messages, the offline form, the survey
comment and answers, and an invitation's page. Then everything is searched, with separators
removed so any formatting of the number shows: every staff socket (the holding agent, another
agent of the department, a supervisor sitting in), every routed page and export for each role
(agent, department supervisor, superuser supervisor, compliance officer, administrator),
coaching review pages, every e-mail sent, every archived file, every text column of every row
in the database, and every log record.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.core import mail
from django.test import Client

from chat.models import InvitationRule, SurveyQuestion
from coaching.models import Review, SamplingRule
from tests.auth import staff_client
from tests.canary.harness import database_text, mail_text, walk_http
from tests.canary.scenario import (
    accept_offer,
    agent_socket,
    favour,
    make_cast,
    say,
    supervisor_socket,
    visitor_socket,
)
from tests.compliance.cards import make_card

pytestmark = pytest.mark.django_db(transaction=True)


def fresh_card() -> str:
    middle = "".join(random.choice("0123456789") for _ in range(16))
    return make_card("4", 16, middle)


def grouped(card: str, sep: str = " ") -> str:
    return sep.join(card[i : i + 4] for i in range(0, len(card), 4))


def find_card(card: str, texts: dict[str, str]) -> list[str]:
    """Where the card's digits appear in order, whatever separators were put between them."""
    found = []
    for where, text in texts.items():
        compact = re.sub(r"[\s\-./_+]", "", text.replace("%20", ""))
        if card in compact:
            at = compact.index(card)
            found.append(f"{where}: ...{compact[max(0, at - 60) : at + 40]}...")
    return found


def _scenario_ids() -> list[int]:
    """The ids of what the scenario made that pages are keyed by (the admin walks its own)."""
    from chat.models import Conversation, Ticket
    from compliance.models import ConversationArchive

    ids: set[int] = set()
    for model in (Conversation, Ticket, Review, ConversationArchive):
        ids |= set(model.objects.values_list("pk", flat=True))
    return sorted(ids)


def _walk_as_every_role() -> dict[str, str]:
    texts: dict[str, str] = {}
    ids = _scenario_ids()
    for username in ("alice", "sue", "sam", "carol", "ada"):
        client = staff_client(username, client=Client(raise_request_exception=False))
        # The superuser's walk takes in every back-office page; the others' pages of their own.
        for url, body in walk_http(client, ids, admin=username == "sam").items():
            texts[f"{username} GET {url}"] = body
    return texts


async def test_a_card_typed_by_a_visitor_is_never_seen_unmasked(
    settings, tmp_path, caplog, eager_tasks
):
    caplog.set_level(logging.DEBUG)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    mail.outbox = []
    cards = {
        name: fresh_card()
        for name in ("page", "name", "start", "chat", "offline", "survey", "invite")
    }

    def setup():
        cast = make_cast()
        favour(cast["alice"], over=[cast["bob"], cast["dora"]])
        SurveyQuestion.objects.create(key="why", text="What could we do better?")
        invite = InvitationRule.objects.create(
            name="all pages", department=cast["support"], url_pattern="*", seconds_on_page=1
        )
        rule = SamplingRule.objects.create(name="every chat", mode=SamplingRule.Mode.ALL)
        rule.reviewers.add(cast["sue"])
        return invite.pk

    invitation_rule = await database_sync_to_async(setup)()
    alice = await agent_socket("alice")
    bob = await agent_socket("bob")
    sam = await supervisor_socket("sam")

    page = f"https://shop.example/checkout?card={cards['page']}&ref=x"
    vera = await visitor_socket(page_url=page)
    await vera.send(
        {
            "type": "invite_request",
            "rule_id": invitation_rule,
            "page_url": f"https://shop.example/pay/{cards['invite']}",
        }
    )
    invited = await vera.until(lambda f: f["type"] in ("invitation", "error"))
    assert invited["type"] == "invitation" and invited["invitation_id"], invited
    await vera.send(
        {
            "type": "start",
            "department": "support",
            "name": f"Vera {cards['name']}",
            "email": "vera@example.com",
            "message": f"my card is {grouped(cards['start'])}",
            "client_id": "v-0",
        }
    )
    chat = await accept_offer(alice)
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    await say(vera, None, f"again: {grouped(cards['chat'], '-')}")
    await alice.until(
        lambda f: f["type"] == "message" and f.get("role") == "visitor" and "again" in f["body"]
    )
    await sam.send({"type": "sit_in", "conversation_id": chat})
    await sam.until(lambda f: f["type"] == "history" and f["conversation_id"] == chat)
    await alice.send({"type": "visitor", "conversation_id": chat})
    await alice.until(lambda f: f["type"] == "visitor")
    await say(alice, chat, "Thanks, I have what I need.")
    alice_http = await database_sync_to_async(staff_client)("alice")
    response = await database_sync_to_async(alice_http.post)(
        "/tickets/from-chat/", {"conversation_id": chat}
    )
    assert response.status_code == 200, response.content
    await alice.send({"type": "end", "conversation_id": chat})
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "ended")
    await vera.send(
        {
            "type": "survey",
            "conversation_id": chat,
            "rating": 2,
            "comment": f"you kept {cards['survey']}",
            "answers": {"why": f"forget {grouped(cards['survey'])}"},
        }
    )
    await vera.until(lambda f: f["type"] == "survey_received")
    await vera.send({"type": "transcript", "conversation_id": chat, "email": "vera@example.com"})
    await vera.until(lambda f: f["type"] == "transcript_sent")

    otto = await visitor_socket()
    await otto.send(
        {
            "type": "offline",
            "department": "billing",
            "name": f"Otto {cards['offline']}",
            "email": "otto@example.com",
            "message": f"card {grouped(cards['offline'])} please call",
        }
    )
    await otto.until(lambda f: f["type"] == "offline_received")
    for rec in (alice, bob, sam, vera, otto):
        await rec.settle()

    # The scenario did what it claims: a coaching review, an archive, the e-mails.
    assert await database_sync_to_async(Review.objects.filter(conversation_id=chat).exists)()
    archived = [p for p in Path(settings.COMPLIANCE_ARCHIVE_DIR).rglob("*") if p.is_file()]
    assert archived, "the ended chat was not archived"
    assert len(mail.outbox) >= 2

    texts: dict[str, str] = {
        "socket of alice (holding agent)": alice.text(),
        "socket of bob (same department)": bob.text(),
        "socket of sam (supervisor sitting in)": sam.text(),
    }
    texts.update(await database_sync_to_async(_walk_as_every_role)())
    texts.update({f"mail '{m.subject}' to {m.to}": mail_text(m) for m in mail.outbox})
    texts.update(
        {f"archive file {p}": p.read_bytes().decode("utf-8", errors="replace") for p in archived}
    )
    texts.update(
        {f"database row {k}": v for k, v in (await database_sync_to_async(database_text)()).items()}
    )
    texts["log records"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {getattr(r, 'exc_text', '')}" for r in caplog.records
    )
    assert any("coaching/reviews/" in key for key in texts), "no coaching review page was walked"
    assert any(key.startswith("carol GET /compliance/transcripts/") for key in texts)

    leaks = {name: find_card(card, texts) for name, card in cards.items()}
    assert {name: where for name, where in leaks.items() if where} == {}

    for rec in (alice, bob, sam, vera, otto):
        await rec.comm.disconnect()


async def test_with_live_masking_off_the_card_stays_out_of_the_archive_and_its_readers(
    settings, tmp_path, eager_tasks
):
    """Live masking off, archive masking on (the compliance officer's choice): agents see the
    card during the chat, but the archive, the transcripts read from it and the files downloaded
    from it never hold it."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    card = fresh_card()

    def setup():
        from compliance.models import MaskingSettings
        from compliance.selectors import clear_masking_cache

        cast = make_cast()
        favour(cast["alice"], over=[cast["bob"], cast["dora"]])
        MaskingSettings.objects.update_or_create(
            pk=1, defaults={"cards_live": False, "cards_archive": True}
        )
        clear_masking_cache()

    await database_sync_to_async(setup)()
    alice = await agent_socket("alice")
    vera = await visitor_socket()
    await vera.send(
        {
            "type": "start",
            "department": "support",
            "name": "Vera",
            "email": "vera@example.com",
            "message": f"card {grouped(card)}",
            "client_id": "v-0",
        }
    )
    chat = await accept_offer(alice)
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    await say(vera, None, f"once more {card}")
    await alice.until(lambda f: f.get("body") == f"once more {card}")  # live masking is off
    await alice.send({"type": "end", "conversation_id": chat})
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "ended")
    # The transcript e-mail is read back from storage too, and mail is no place for a card.
    mail.outbox = []
    await vera.send({"type": "transcript", "conversation_id": chat, "email": "vera@example.com"})
    await vera.until(lambda f: f["type"] == "transcript_sent")
    await vera.send(
        {
            "type": "offline",
            "department": "support",
            "email": "vera@example.com",
            "message": f"and offline {card}",
        }
    )
    await vera.until(lambda f: f["type"] == "offline_received")
    await vera.settle()

    def read_back() -> dict[str, str]:
        texts = {
            f"archive file {p}": p.read_bytes().decode("utf-8", errors="replace")
            for p in Path(settings.COMPLIANCE_ARCHIVE_DIR).rglob("*")
            if p.is_file()
        }
        assert texts, "the ended chat was not archived"
        carol = staff_client("carol", client=Client(raise_request_exception=False))
        for url in (
            f"/compliance/transcripts/{chat}/",
            f"/compliance/transcripts/{chat}/download/",
        ):
            response = carol.get(url)
            assert response.status_code == 200, (url, response.status_code)
            texts[f"carol GET {url}"] = response.content.decode()
        return texts

    texts = await database_sync_to_async(read_back)()
    assert len(mail.outbox) == 2 and "once more" in mail.outbox[0].body
    assert "and offline" in mail.outbox[1].body
    texts.update({f"mail '{m.subject}'": mail_text(m) for m in mail.outbox})
    assert find_card(card, texts) == []
    await alice.comm.disconnect()
    await vera.comm.disconnect()


async def test_a_card_an_agent_types_for_the_visitor_or_the_next_agent_is_masked_too(
    settings, eager_tasks
):
    """Live masking covers agents' text (so nobody can send a card back): the transfer note,
    stored on the assignment and shown to the next agent, and a ticket reply, stored and
    e-mailed to the visitor, are masked like chat messages."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    note_card, reply_card = fresh_card(), fresh_card()
    cast = await database_sync_to_async(make_cast)()
    await database_sync_to_async(favour)(cast["alice"], over=[cast["bob"], cast["dora"]])
    alice = await agent_socket("alice")
    bob = await agent_socket("bob")
    vera = await visitor_socket()
    await vera.send(
        {
            "type": "start",
            "department": "support",
            "email": "vera@example.com",
            "message": "hi",
            "client_id": "v",
        }
    )
    chat = await accept_offer(alice)
    await alice.send(
        {
            "type": "transfer",
            "conversation_id": chat,
            "to_agent": cast["bob"].user_id,
            "note": f"she read me {grouped(note_card)}",
        }
    )
    offer = await bob.until(lambda f: f["type"] == "offer" and f["conversation_id"] == chat)
    assert offer["transfer_note"].startswith("she read me")

    def reply() -> None:
        client = staff_client("bob")
        ticket = client.post("/tickets/from-chat/", {"conversation_id": chat}).json()["ticket_id"]
        response = client.post(f"/tickets/{ticket}/", {"body": f"charged to {reply_card}"})
        assert response.status_code == 302

    await database_sync_to_async(reply)()
    for rec in (alice, bob, vera):
        await rec.settle()
    texts = {
        "socket of bob": bob.text(),
        "socket of alice": alice.text(),
        "socket of vera": vera.text(),
    }
    texts.update({f"mail '{m.subject}'": mail_text(m) for m in mail.outbox})
    texts.update(
        {f"database row {k}": v for k, v in (await database_sync_to_async(database_text)()).items()}
    )
    assert any("charged to" in m.body for m in mail.outbox)
    assert find_card(note_card, texts) == [] and find_card(reply_card, texts) == []
    for rec in (alice, bob, vera):
        await rec.comm.disconnect()
