"""Tickets on the staff side: made from a chat, listed and filtered, answered by e-mail, status
changed; agents reach only their departments' tickets, and every look and change is audited."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from chat import services
from chat.models import Message, Ticket, TicketMessage
from chat.pipeline import Inbound, run
from compliance.models import AuditEntry
from tests.auth import staff_client

pytestmark = pytest.mark.django_db


def make_ticket(
    department, *, subject="Parcel", status=Ticket.Status.OPEN, assignee=None
) -> Ticket:
    now = timezone.now()
    ticket = Ticket.objects.create(
        subject=subject,
        source=Ticket.Source.OFFLINE,
        department=department,
        email="vera@example.com",
        name="Vera",
        status=status,
        assignee=assignee,
        created_at=now,
        updated_at=now,
    )
    TicketMessage.objects.create(
        ticket=ticket, kind=TicketMessage.Kind.VISITOR, body="Where is it?", created_at=now
    )
    return ticket


@pytest.fixture
def chat_with_note(department, agent):
    visitor, _ = services.create_visitor()
    conversation = services.start_conversation(
        visitor=visitor,
        department_slug="support",
        name="Vera",
        email="vera@example.com",
        message="My parcel is late",
    )
    run(
        Inbound(
            conversation_id=conversation.pk,
            role=Message.Role.AGENT,
            sender_id=agent.user_id,
            body="Note: check the courier",
            visibility=Message.Visibility.INTERNAL,
        )
    )
    return conversation


def test_agent_creates_a_ticket_from_a_chat_with_its_transcript(agent, chat_with_note):
    client = staff_client(agent.user)
    response = client.post("/tickets/from-chat/", {"conversation_id": chat_with_note.pk})
    assert response.status_code == 200
    ticket = Ticket.objects.get(pk=response.json()["ticket_id"])
    assert (
        ticket.source == "chat"
        and ticket.conversation == chat_with_note
        and ticket.assignee == agent
    )
    assert ticket.email == "vera@example.com" and ticket.subject == "My parcel is late"
    # Pressing the button again gives the same ticket.
    assert (
        client.post("/tickets/from-chat/", {"conversation_id": chat_with_note.pk}).json()[
            "ticket_id"
        ]
        == ticket.pk
    )
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "My parcel is late" in page and "Note: check the courier" in page
    assert (
        AuditEntry.objects.filter(action="ticket.create", target=f"ticket:{ticket.pk}").count() == 1
    )


def test_ticket_from_chat_refusals(agent, make_agent, other_department, chat_with_note):
    outsider = make_agent("olga", "Olga Other", [other_department])
    client = staff_client(outsider.user)
    assert (
        client.post("/tickets/from-chat/", {"conversation_id": chat_with_note.pk}).status_code
        == 404
    )
    assert client.post("/tickets/from-chat/", {"conversation_id": "x"}).status_code == 400
    visitor, _ = services.create_visitor()
    anonymous = services.start_conversation(
        visitor=visitor, department_slug="support", message="Hi"
    )
    response = staff_client(agent.user).post(
        "/tickets/from-chat/", {"conversation_id": anonymous.pk}
    )
    assert response.status_code == 400 and "e-mail" in response.json()["error"]
    assert not Ticket.objects.exists()


def test_list_filters_and_department_access(agent, department, other_department, make_agent):
    mine_open = make_ticket(department, subject="Open one")
    make_ticket(department, subject="Solved one", status=Ticket.Status.SOLVED)
    make_ticket(other_department, subject="Billing secret")
    client = staff_client(agent.user)
    page = client.get("/tickets/").content.decode()
    assert "Open one" in page and "Solved one" in page and "Billing secret" not in page
    page = client.get("/tickets/?status=open").content.decode()
    assert "Open one" in page and "Solved one" not in page
    mine_open.assignee = agent
    mine_open.save(update_fields=["assignee"])
    page = client.get(f"/tickets/?assignee={agent.pk}").content.decode()
    assert "Open one" in page and "Solved one" not in page
    page = client.get("/tickets/?assignee=none").content.decode()
    assert "Open one" not in page and "Solved one" in page
    other = Ticket.objects.get(subject="Billing secret")
    assert client.get(f"/tickets/{other.pk}/").status_code == 404


def test_a_user_without_an_agent_profile_sees_no_tickets(department, db):
    from tests.factories import UserFactory

    make_ticket(department)
    client = staff_client(UserFactory(username="nobody"))
    assert client.get("/tickets/").status_code == 403


def test_reply_by_email_is_kept_on_the_ticket_and_audited(
    agent, department, django_capture_on_commit_callbacks
):
    ticket = make_ticket(department)
    client = staff_client(agent.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/tickets/{ticket.pk}/", {"body": "It arrives tomorrow."})
    assert response.status_code == 302
    reply = ticket.messages.get(kind=TicketMessage.Kind.REPLY)
    assert (
        reply.body == "It arrives tomorrow."
        and reply.author == agent.user
        and reply.emailed_at is not None
    )
    (sent,) = mail.outbox
    assert (
        sent.to == ["vera@example.com"]
        and sent.body == "It arrives tomorrow."
        and f"ticket {ticket.pk}" in sent.subject
    )
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING
    assert AuditEntry.objects.filter(action="ticket.reply", target=f"ticket:{ticket.pk}").exists()
    assert "It arrives tomorrow." in client.get(f"/tickets/{ticket.pk}/").content.decode()


def test_an_empty_or_too_long_reply_is_refused_and_sends_nothing(
    agent, department, django_capture_on_commit_callbacks
):
    ticket = make_ticket(department)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client(agent.user).post(f"/tickets/{ticket.pk}/", {"body": "   "})
        assert response.status_code == 400 and "empty" in response.content.decode()
        long_text = "x" * 10_001
        response = staff_client(agent.user).post(f"/tickets/{ticket.pk}/", {"body": long_text})
        assert (
            response.status_code == 400 and long_text in response.content.decode()
        )  # the draft is kept
    assert mail.outbox == [] and not ticket.messages.filter(kind="reply").exists()


def test_status_change_is_audited(agent, department):
    ticket = make_ticket(department)
    client = staff_client(agent.user)
    assert client.post(f"/tickets/{ticket.pk}/", {"status": "solved"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    entry = AuditEntry.objects.get(action="ticket.status")
    assert entry.details == {"from": "open", "to": "solved"}
    assert client.post(f"/tickets/{ticket.pk}/", {"status": "bogus"}).status_code == 400
    ticket.refresh_from_db()
    assert ticket.status == "solved"


def test_viewing_and_exporting_are_audited(agent, department):
    ticket = make_ticket(department)
    client = staff_client(agent.user)
    client.get(f"/tickets/{ticket.pk}/")
    assert AuditEntry.objects.filter(
        action="ticket.view", target=f"ticket:{ticket.pk}", actor=agent.user
    ).exists()
    response = client.get("/tickets/?format=csv&status=open")
    assert response["Content-Type"].startswith("text/csv")
    assert "Parcel" in response.content.decode()
    export = AuditEntry.objects.get(action="ticket.export")
    assert export.details["count"] == 1 and export.details["status"] == "open"


def test_ticket_pages_need_a_login(department, client):
    ticket = make_ticket(department)
    assert client.get("/tickets/").status_code == 302
    assert client.get(f"/tickets/{ticket.pk}/").status_code == 302
    assert client.post("/tickets/from-chat/", {"conversation_id": 1}).status_code == 302


# --- reassignment -------------------------------------------------------------------------


def test_an_agent_takes_an_unassigned_ticket_and_hands_it_to_a_colleague(
    agent, second_agent, department, django_capture_on_commit_callbacks
):
    ticket = make_ticket(department)
    client = staff_client(agent.user)
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Take it" in page and "Bob Agent" in page  # the department's agents are offered
    assert client.post(f"/tickets/{ticket.pk}/", {"assignee": str(agent.pk)}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.assignee == agent
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert client.post(f"/tickets/{ticket.pk}/", {"assignee": str(second_agent.pk)}).status_code == 302
    assert callbacks  # the workspace of the new assignee is told (ticket_assigned)
    ticket.refresh_from_db()
    assert ticket.assignee == second_agent
    notes = list(ticket.messages.filter(kind=TicketMessage.Kind.NOTE).values_list("body", flat=True))
    assert notes == [
        "Alice Agent took the ticket.",
        "Alice Agent assigned the ticket to Bob Agent (was Alice Agent).",
    ]
    entries = AuditEntry.objects.filter(action="ticket.assign").order_by("pk")
    assert [e.details for e in entries] == [
        {"from": None, "to": agent.pk},
        {"from": agent.pk, "to": second_agent.pk},
    ]
    # The same assignee again changes nothing and records nothing.
    staff_client(second_agent.user).post(f"/tickets/{ticket.pk}/", {"assignee": str(second_agent.pk)})
    assert AuditEntry.objects.filter(action="ticket.assign").count() == 2
    # The list's "Me" filter.
    assert "Parcel" in staff_client(second_agent.user).get("/tickets/?assignee=me").content.decode()
    assert "Parcel" not in client.get("/tickets/?assignee=me").content.decode()


def test_an_agent_cannot_take_a_colleagues_ticket_but_a_supervisor_can(
    agent, second_agent, department, department_supervisor
):
    ticket = make_ticket(department, assignee=second_agent)
    client = staff_client(agent.user)
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Only a supervisor of this department" in page
    response = client.post(f"/tickets/{ticket.pk}/", {"assignee": str(agent.pk)})
    assert response.status_code == 400 and "Bob Agent holds this ticket" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.assignee == second_agent
    denied = AuditEntry.objects.get(action="ticket.assign")
    assert denied.outcome == AuditEntry.Outcome.DENIED
    # The department's supervisor may give it to anyone of the department, or to nobody.
    supervisor = staff_client(department_supervisor)
    assert supervisor.post(f"/tickets/{ticket.pk}/", {"assignee": str(agent.pk)}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.assignee == agent
    assert supervisor.post(f"/tickets/{ticket.pk}/", {"assignee": "none"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.assignee is None
    assert ticket.messages.filter(kind="note").last().body == "Sue Supervisor removed the assignee (Alice Agent)."


def test_a_ticket_goes_only_to_an_agent_of_its_department(agent, department, make_agent, other_department):
    ticket = make_ticket(department)
    outsider = make_agent("olga", "Olga Other", [other_department])
    client = staff_client(agent.user)
    for value in (str(outsider.pk), "999999", "someone"):
        response = client.post(f"/tickets/{ticket.pk}/", {"assignee": value})
        assert response.status_code == 400
    ticket.refresh_from_db()
    assert ticket.assignee is None and not AuditEntry.objects.filter(action="ticket.assign").exists()
    # A ticket of another department cannot be reached at all.
    theirs = make_ticket(other_department)
    assert client.post(f"/tickets/{theirs.pk}/", {"assignee": str(agent.pk)}).status_code == 404
