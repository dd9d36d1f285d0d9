"""Archive-place masking on everything read back from storage.

With card masking switched to the archive only, the agent sees the number live (and the database
keeps it), but every page, e-mail and export that reads it back shows X's: ticket pages in the
workspace and the admin, the ticket CSV, the reply and confirmation e-mails to the visitor, the
transcript e-mail, the workspace and coaching transcripts, the visitor panel and the archive.
"""

from __future__ import annotations

import orjson
import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from chat import services, tickets, visitor_panel, widget
from chat.models import Conversation, Message, SurveyQuestion, Ticket, TicketMessage
from chat.pipeline import Inbound, run
from compliance import archive
from compliance import services as compliance_services
from compliance.models import ConversationArchive, MaskingSettings
from tests.auth import staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_here")]

CARD = "4111 1111 1111 1111"
MASKED = "XXXX XXXX XXXX XXXX"


@pytest.fixture
def archive_only_cards(db):
    MaskingSettings.objects.create(cards_live=False, cards_archive=True)
    compliance_services.reload_masking_rules()


def _chat(department, agent, django_capture_on_commit_callbacks, *, end: bool = True):
    """A chat where the visitor gives a card in the name, the question and a message."""
    visitor, _ = services.create_visitor()
    conversation = services.start_conversation(
        visitor=visitor,
        department_slug=department.slug,
        name=f"Vera {CARD}",
        email="vera@example.com",
        message=f"Charge {CARD} please",
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.ACTIVE, agent=agent
    )
    conversation.assignments.create(
        agent=agent, offered_at=timezone.now(), accepted_at=timezone.now()
    )
    run(
        Inbound(
            conversation_id=conversation.pk,
            role=Message.Role.AGENT,
            sender_id=agent.user_id,
            body=f"Noted: {CARD}",
        )
    )
    if end:
        with django_capture_on_commit_callbacks(execute=True):
            services.end_conversation(conversation_id=conversation.pk, ended_by="agent")
    conversation.refresh_from_db()
    return conversation


def _masked(text: str) -> bool:
    return CARD not in text and MASKED in text


def test_live_keeps_the_card_so_read_back_is_what_masks_it(
    archive_only_cards, department, agent, django_capture_on_commit_callbacks
):
    conversation = _chat(department, agent, django_capture_on_commit_callbacks, end=False)
    bodies = list(conversation.messages.values_list("body", flat=True))
    assert any(CARD in b for b in bodies)  # the precondition of every test below


def test_ticket_pages_and_csv_in_the_workspace(
    archive_only_cards, department, agent, django_capture_on_commit_callbacks
):
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    ticket = tickets.create_ticket_from_chat(user=agent.user, conversation_id=conversation.pk)
    TicketMessage.objects.create(
        ticket=ticket, kind=TicketMessage.Kind.NOTE, body=f"card {CARD}", created_at=timezone.now()
    )
    client = staff_client(agent.user)

    listing = client.get(reverse("ticket_list")).content.decode()
    assert _masked(listing)
    export = client.get(reverse("ticket_list"), {"format": "csv"}).content.decode()
    assert _masked(export)

    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert _masked(page)
    assert page.count(MASKED) >= 4  # subject, name, the note and the chat transcript


def test_ticket_pages_in_the_admin(
    archive_only_cards, department, agent, supervisor, django_capture_on_commit_callbacks
):
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    ticket = tickets.create_ticket_from_chat(user=agent.user, conversation_id=conversation.pk)
    TicketMessage.objects.create(
        ticket=ticket, kind=TicketMessage.Kind.NOTE, body=f"card {CARD}", created_at=timezone.now()
    )
    client = staff_client(supervisor)
    changelist = client.get(reverse("admin:chat_ticket_changelist")).content.decode()
    assert _masked(changelist)
    change = client.get(reverse("admin:chat_ticket_change", args=[ticket.pk]))
    assert change.status_code == 200 and _masked(change.content.decode())

    # Saving the ticket's status in the admin keeps the stored subject as it was.
    form = {
        "status": Ticket.Status.SOLVED,
        "source": ticket.source,
        "email": ticket.email,
        "messages-TOTAL_FORMS": "1",
        "messages-INITIAL_FORMS": "1",
        "messages-MIN_NUM_FORMS": "0",
        "messages-MAX_NUM_FORMS": "1000",
        "messages-0-id": str(ticket.messages.get().pk),
        "messages-0-ticket": str(ticket.pk),
    }
    saved = client.post(reverse("admin:chat_ticket_change", args=[ticket.pk]), form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.SOLVED and CARD in ticket.subject

    conversation_page = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    assert conversation_page.status_code == 200 and _masked(conversation_page.content.decode())
    conversations = client.get(reverse("admin:chat_conversation_changelist")).content.decode()
    assert CARD not in conversations
    visitor_page = client.get(reverse("admin:chat_visitor_change", args=[conversation.visitor_id]))
    assert CARD not in visitor_page.content.decode()


def test_survey_comments_in_the_admin(
    archive_only_cards, department, agent, supervisor, django_capture_on_commit_callbacks
):
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    SurveyQuestion.objects.create(key="why", text="Why?")
    survey = widget.submit_survey(
        visitor=conversation.visitor,
        conversation_id=conversation.pk,
        rating=4,
        comment=f"paid with {CARD}",
        answers={"why": f"card {CARD}"},
    )
    page = staff_client(supervisor).get(
        reverse("admin:chat_surveyresponse_change", args=[survey.pk])
    )
    assert page.status_code == 200 and _masked(page.content.decode())


def test_emails_to_the_visitor(
    archive_only_cards, department, agent, django_capture_on_commit_callbacks
):
    # The confirmation of an offline message.
    visitor, _ = services.create_visitor()
    with django_capture_on_commit_callbacks(execute=True):
        offline = widget.submit_offline_message(
            visitor=visitor,
            department_slug=department.slug,
            name=f"Vera {CARD}",
            email="vera@example.com",
            message=f"My card {CARD} was charged twice",
        )
    assert CARD in offline.messages.get().body  # stored as typed: live masking is off
    (confirmation,) = mail.outbox
    assert _masked(confirmation.body) and CARD not in confirmation.subject

    # An agent's reply by e-mail, and the subject it goes out under.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tickets.reply_to_ticket(
            user=agent.user, ticket_id=offline.pk, body=f"We refunded {CARD}."
        )
    (reply,) = mail.outbox
    assert reply.body == f"We refunded {MASKED}."
    assert CARD not in reply.subject and MASKED in reply.subject

    # The transcript the visitor asks for at the end of a chat.
    mail.outbox.clear()
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    widget.email_transcript(visitor=conversation.visitor, conversation_id=conversation.pk)
    (transcript,) = mail.outbox
    assert _masked(transcript.body) and f"Noted: {MASKED}" in transcript.body


def test_workspace_transcript_and_visitor_panel(
    archive_only_cards, department, agent, django_capture_on_commit_callbacks
):
    earlier = _chat(department, agent, django_capture_on_commit_callbacks)
    page = staff_client(agent.user).get(reverse("agent_transcript", args=[earlier.pk]))
    assert page.status_code == 200 and _masked(page.content.decode())

    # The same visitor (by e-mail) comes back: the panel lists the earlier chat's subject.
    visitor, _ = services.create_visitor()
    current = services.start_conversation(
        visitor=visitor, department_slug=department.slug, email="vera@example.com", message="Hi"
    )
    Conversation.objects.filter(pk=current.pk).update(status=Conversation.Status.ACTIVE, agent=agent)
    current.assignments.create(agent=agent, offered_at=timezone.now(), accepted_at=timezone.now())
    frame = visitor_panel.panel_frame(user=agent.user, conversation_id=current.pk)
    (previous,) = frame["previous"]
    assert previous["subject"] == f"Charge {MASKED} please"


def test_coaching_transcript(
    archive_only_cards, department, agent, supervisor, django_capture_on_commit_callbacks
):
    from coaching.models import Review

    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    review = Review.objects.create(
        conversation=conversation, agent=agent, reviewer=supervisor, created_at=timezone.now()
    )
    page = staff_client(supervisor).get(reverse("admin:coaching_review_change", args=[review.pk]))
    assert page.status_code == 200 and _masked(page.content.decode())


def test_archive_and_its_transcript_pages(
    archive_only_cards, department, agent, supervisor, django_capture_on_commit_callbacks
):
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == ConversationArchive.State.CONFIRMED
    stored = archive.read_archived_json(archive=record)
    assert CARD.encode() not in stored and MASKED.encode() in stored
    document = orjson.loads(stored)
    assert document["visitor"]["name"] == f"Vera {MASKED}"

    client = staff_client(supervisor)
    page = client.get(reverse("compliance:transcript", args=[conversation.pk]))
    assert page.status_code == 200 and _masked(page.content.decode())
    download = client.get(reverse("compliance:transcript_download", args=[conversation.pk]))
    assert download.status_code == 200 and _masked(download.content.decode())


def test_a_document_read_from_storage_is_masked_again_everywhere(department) -> None:
    # An object archived before a rule existed: every chat-supplied text is masked on reading.
    document = {
        "conversation": {"department": {"id": department.pk}, "subject": f"s {CARD}"},
        "visitor": {"name": f"n {CARD}"},
        "messages": [{"body": f"b {CARD}"}],
        "survey": {"comment": f"c {CARD}", "answers": {"why": f"a {CARD}", "n": 3}},
    }
    assert archive.mask_document(document) is True
    assert CARD not in orjson.dumps(document).decode()
    assert document["survey"]["answers"]["n"] == 3
    assert archive.mask_document(document) is False


# --- Live masking of the other agent-supplied texts ---------------------------------------


def test_a_ticket_reply_is_masked_live(department, agent, django_capture_on_commit_callbacks):
    visitor, _ = services.create_visitor()
    with django_capture_on_commit_callbacks(execute=True):
        offline = widget.submit_offline_message(
            visitor=visitor,
            department_slug=department.slug,
            name="Vera",
            email="vera@example.com",
            message="Where is my refund?",
        )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reply = tickets.reply_to_ticket(
            user=agent.user, ticket_id=offline.pk, body=f"Your card {CARD} was refunded."
        )
    reply.refresh_from_db()
    assert reply.body == f"Your card {MASKED} was refunded."
    assert CARD not in mail.outbox[0].body


def test_a_transfer_note_is_masked_live(department, agent, second_agent):
    from chat import assignment
    from chat.models import AgentProfile, Assignment

    AgentProfile.objects.filter(pk__in=[agent.pk, second_agent.pk]).update(presence="online")
    visitor, _ = services.create_visitor()
    conversation = services.start_conversation(
        visitor=visitor, department_slug=department.slug, message="Hello"
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.ACTIVE, agent=agent
    )
    Assignment.objects.filter(conversation=conversation).delete()
    conversation.assignments.create(
        agent=agent, offered_at=timezone.now(), accepted_at=timezone.now()
    )
    assignment.transfer(
        agent=agent,
        conversation_id=conversation.pk,
        to_agent_id=second_agent.user_id,
        note=f"customer card {CARD}",
    )
    notes = list(Assignment.objects.filter(conversation=conversation).values_list("transfer_note", flat=True))
    assert f"customer card {MASKED}" in notes and not any(CARD in n for n in notes)
    assert not Message.objects.filter(conversation=conversation, body__contains=CARD).exists()


def test_conduit_mode_pages_read_the_bodies_back_from_the_archive(
    archive_only_cards, department, agent, django_capture_on_commit_callbacks, settings
):
    from tests.compliance.archive_helpers import configure

    configure(conduit_mode=True)
    conversation = _chat(department, agent, django_capture_on_commit_callbacks)
    assert not conversation.messages.exclude(body="").exists()  # nothing left in the database
    ticket = tickets.create_ticket_from_chat(user=agent.user, conversation_id=conversation.pk)
    client = staff_client(agent.user)
    for url in (
        reverse("agent_transcript", args=[conversation.pk]),
        reverse("ticket_detail", args=[ticket.pk]),
    ):
        page = client.get(url).content.decode()
        assert f"Charge {MASKED} please" in page and f"Noted: {MASKED}" in page, url
        assert CARD not in page

    # Storage gone: the page still opens and says where the text is.
    import shutil

    shutil.rmtree(settings.COMPLIANCE_ARCHIVE_DIR)
    page = client.get(reverse("agent_transcript", args=[conversation.pk])).content.decode()
    assert "kept in the archive, which cannot be read now" in page
