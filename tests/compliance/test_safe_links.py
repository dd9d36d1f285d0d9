"""Links in chat text are clickable on the server-rendered pages, safely: only http(s) (and the
plain addresses Django's urlize knows) become links; javascript: and data: stay text."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Message
from tests.auth import staff_client
from tests.factories import ConversationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_here")]

BODY = "See https://shop.example/order?id=7&x=1 <script>alert(1)</script> or javascript:alert(2) data:text/html,<b>x</b>"


def _assert_safe(html: str) -> None:
    assert '<a href="https://shop.example/order?id=7&amp;x=1" rel="nofollow">' in html
    assert 'href="javascript' not in html and 'href="data' not in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html


def test_workspace_transcript_links(department, agent) -> None:
    conversation = ConversationFactory(department=department, status="ended", created_at=timezone.now())
    Message.objects.create(
        conversation=conversation, seq=1, public_seq=1, role="visitor", body=BODY,
        created_at=timezone.now(),
    )
    page = staff_client(agent.user).get(reverse("agent_transcript", args=[conversation.pk]))
    assert page.status_code == 200
    _assert_safe(page.content.decode())


def test_archived_transcript_and_ticket_links(department, agent, supervisor, django_capture_on_commit_callbacks) -> None:
    from chat import tickets
    from chat.models import TicketMessage
    from tests.compliance.archive_helpers import ended_chat

    conversation = ended_chat(django_capture_on_commit_callbacks, department=department, body=BODY)
    page = staff_client(supervisor).get(reverse("compliance:transcript", args=[conversation.pk]))
    assert page.status_code == 200
    _assert_safe(page.content.decode())

    ticket = tickets.create_ticket_from_chat(user=supervisor, conversation_id=conversation.pk)
    TicketMessage.objects.create(ticket=ticket, kind="note", body=BODY, created_at=timezone.now())
    page = staff_client(supervisor).get(reverse("ticket_detail", args=[ticket.pk]))
    html = page.content.decode()
    _assert_safe(html)
    assert html.count('<a href="https://shop.example/order') == 2  # the thread and the transcript
