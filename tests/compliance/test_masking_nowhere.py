"""With live masking on (the default), a full card number typed anywhere ends up nowhere.

One visitor gives a card in every field it can fill (page address, referrer and browser
string, pre-chat name, first question, chat messages, survey comment and answer, offline
message), and agents try to send it back (chat
reply, transfer note, ticket reply, direct message to a colleague). Afterwards no row of any
table, no real-time event handed to the channel layer (Redis in real mode), no Celery task's
arguments, no log line, no e-mail and no archived object contains it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from celery.signals import before_task_publish, task_prerun
from django.apps import apps
from django.conf import settings
from django.core import mail
from django.utils import timezone

from chat import assignment, collab, events, services, tickets, widget
from chat.models import AgentProfile, Conversation, SurveyQuestion

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_here")]

CARD = "4111 1111 1111 1111"
# The number in any formatting: spaces, dashes or none.
FULL_CARD = re.compile(r"4111[ -]?1111[ -]?1111[ -]?1111")


def test_a_card_number_typed_anywhere_is_found_nowhere(
    department, agent, second_agent, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    sent_events: list[object] = []
    original_send = events._send

    def record_send(group, event):
        sent_events.append((group, event))
        original_send(group, event)

    monkeypatch.setattr(events, "_send", record_send)
    task_calls: list[object] = []

    def record_task(sender=None, args=None, kwargs=None, body=None, **extra):
        task_calls.append((sender, args, kwargs, body))

    before_task_publish.connect(record_task, weak=False)
    task_prerun.connect(record_task, weak=False)
    caplog.set_level(logging.DEBUG)
    AgentProfile.objects.filter(pk__in=[agent.pk, second_agent.pk]).update(
        presence=AgentProfile.Presence.ONLINE, last_seen_at=timezone.now()
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            visitor, _ = services.create_visitor(
                page_url=f"https://shop.example/pay?card={CARD.replace(' ', '')}",
                referrer=f"https://ads.example/?c={CARD.replace(' ', '-')}",
                user_agent=f"Mozilla/5.0 {CARD}",
            )
            conversation = services.start_conversation(
                visitor=visitor,
                department_slug=department.slug,
                name=f"Vera {CARD}",
                email="vera@example.com",
                message=f"My card is {CARD.replace(' ', '-')}",
            )
        conversation.refresh_from_db()
        holder = AgentProfile.objects.get(pk=conversation.agent_id)
        with django_capture_on_commit_callbacks(execute=True):
            assignment.accept_offer(agent=holder, conversation_id=conversation.pk)
            services.post_visitor_message(visitor=visitor, body=f"again: {CARD}", client_id="v1")
            services.post_staff_message(
                user=holder.user, conversation_id=conversation.pk,
                body=f"You typed {CARD.replace(' ', '')}", client_id="a1",
            )
            other = second_agent if holder.pk == agent.pk else agent
            collab.send_direct_message(
                sender=holder, to=other.user_id, body=f"look: {CARD}", client_id="d1"
            )
            assignment.transfer(
                agent=holder, conversation_id=conversation.pk, to_agent_id=other.user_id,
                note=f"card {CARD}",
            )
            assignment.accept_offer(agent=other, conversation_id=conversation.pk)
            services.end_by_visitor(visitor=visitor)
        SurveyQuestion.objects.create(key="why", text="Why?")
        with django_capture_on_commit_callbacks(execute=True):
            widget.submit_survey(
                visitor=visitor, conversation_id=conversation.pk, rating=2,
                comment=f"charged {CARD}", answers={"why": f"card {CARD}"},
            )
            offline = widget.submit_offline_message(
                visitor=visitor, department_slug=department.slug, name=f"V {CARD}",
                email="vera@example.com", message=f"{CARD} was charged twice",
            )
            tickets.reply_to_ticket(
                user=other.user, ticket_id=offline.pk, body=f"Refunded {CARD}."
            )
            ticket = tickets.create_ticket_from_chat(
                user=other.user, conversation_id=conversation.pk
            )
            tickets.reply_to_ticket(user=other.user, ticket_id=ticket.pk, body=f"{CARD} ok")
            widget.email_transcript(
                visitor=visitor, conversation_id=conversation.pk, email="vera@example.com"
            )
    finally:
        before_task_publish.disconnect(record_task)
        task_prerun.disconnect(record_task)

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.ENDED
    assert conversation.archive.state == "confirmed"
    # The flow really went through: the X's are there, in the database and the events.
    assert "XXXX XXXX XXXX XXXX" in repr(sent_events)
    assert len(mail.outbox) >= 4 and task_calls

    found = []
    for model in apps.get_models():
        for row in model.objects.values():
            if FULL_CARD.search(repr(row)):
                found.append(f"{model._meta.label} {row}")
    assert not found, "\n".join(found)
    assert not FULL_CARD.search(repr(sent_events))
    assert not FULL_CARD.search(repr(task_calls))
    assert not FULL_CARD.search(caplog.text)
    for message in mail.outbox:
        assert not FULL_CARD.search(f"{message.subject}\n{message.body}")
    if settings.REDIS_URL:  # real mode: whatever the channel layer and caches left in Redis
        import redis

        with redis.Redis.from_url(settings.REDIS_URL) as client:
            for key in client.scan_iter(count=1000):
                dumped = client.dump(key) or b""
                assert not FULL_CARD.search(dumped.decode("latin-1")), key
    archived = [p for p in Path(settings.COMPLIANCE_ARCHIVE_DIR).rglob("*") if p.is_file()]
    assert any(f"conversation-{conversation.pk}" in str(p) for p in archived)
    for path in archived:
        assert not FULL_CARD.search(path.read_text(errors="replace")), path
