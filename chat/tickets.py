"""Tickets (follow-up work): reads with the access check built in, and the changes agents make.

Agents see the tickets of their departments (and tickets without a department); superusers see
all. Opening a ticket, exporting the list, replying and changing the status are audited in the
same transaction as the change.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat import readback
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import AgentProfile, Conversation, Message, Ticket, TicketMessage
from chat.pipeline import FilterContext, clean_body, filter_text
from compliance import audit

MAX_REPLY_CHARS = 10_000


def _role(user: Any) -> str:
    return "superuser" if getattr(user, "is_superuser", False) else "agent"


def _department_ids(user: Any) -> list[int] | None:
    """None: every department (superuser)."""
    if getattr(user, "is_superuser", False):
        return None
    profile = AgentProfile.objects.filter(user=user).first()
    if profile is None:
        return []
    return list(profile.departments.values_list("pk", flat=True))


def visible_tickets(*, user: Any) -> QuerySet[Ticket]:
    departments = _department_ids(user)
    qs = Ticket.objects.select_related("department", "assignee", "conversation")
    if departments is None:
        return qs
    if not departments:
        return qs.none()
    return qs.filter(Q(department_id__in=departments) | Q(department__isnull=True))


def list_tickets(
    *,
    user: Any,
    status: str = "",
    assignee: str = "",
    department: str = "",
    source_ip: str | None = None,
    export: bool = False,
) -> list[Ticket]:
    qs = visible_tickets(user=user)
    if status in Ticket.Status.values:
        qs = qs.filter(status=status)
    if assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee.isdigit():
        qs = qs.filter(assignee_id=int(assignee))
    if department.isdigit():
        qs = qs.filter(department_id=int(department))
    tickets = list(qs[:500])
    if export:
        audit.record(
            action="ticket.export",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target="tickets",
            details={
                "status": status,
                "assignee": assignee,
                "department": department,
                "count": len(tickets),
            },
        )
    return tickets


def get_ticket_for(
    *, user: Any, ticket_id: Any, source_ip: str | None = None, audit_view: bool = False
) -> Ticket:
    if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
        raise NotFound()
    ticket = visible_tickets(user=user).filter(pk=ticket_id).first()
    if ticket is None:
        raise NotFound()
    if audit_view:
        audit.record(
            action="ticket.view",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
        )
    return ticket


def linked_transcript(*, ticket: Ticket) -> list[Message]:
    """The chat a ticket came from, as staff see it: public lines and internal notes, no whispers."""
    if ticket.conversation_id is None:
        return []
    return list(
        Message.objects.filter(conversation_id=ticket.conversation_id)
        .exclude(visibility=Message.Visibility.WHISPER)
        .select_related("sender")
        .order_by("seq")
    )


def create_ticket_from_chat(
    *, user: Any, conversation_id: Any, source_ip: str | None = None
) -> Ticket:
    """An agent of the chat's department (or a superuser) opens a follow-up ticket from it."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise InvalidInput("conversation_id must be an integer.", code="invalid_field")
    departments = _department_ids(user)
    qs = Conversation.objects.select_related("visitor", "department")
    if departments is not None:
        # Its department's agents, and whoever held it (a transfer may cross departments).
        qs = qs.filter(Q(department_id__in=departments) | Q(agent__user=user))
    conversation = qs.filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound()
    if not conversation.visitor.email:
        raise Conflict(
            "The visitor left no e-mail address, so a ticket could not be answered.",
            code="no_email",
        )
    existing = Ticket.objects.filter(conversation=conversation, source=Ticket.Source.CHAT).first()
    if existing is not None:
        return existing  # pressing the button twice gives the same ticket
    now = timezone.now()
    profile = AgentProfile.objects.filter(user=user).first()
    with transaction.atomic():
        ticket = Ticket.objects.create(
            subject=(conversation.subject or f"Follow-up of chat {conversation.pk}")[:200],
            source=Ticket.Source.CHAT,
            department=conversation.department,
            visitor=conversation.visitor,
            conversation=conversation,
            name=conversation.visitor.name,
            email=conversation.visitor.email,
            assignee=profile,
            created_by=user,
            created_at=now,
            updated_at=now,
        )
        audit.record(
            action="ticket.create",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
            details={"conversation_id": conversation.pk},
        )
    return ticket


def reply_to_ticket(
    *, user: Any, ticket_id: int, body: Any, source_ip: str | None = None
) -> TicketMessage:
    """The reply is kept on the ticket and e-mailed to the visitor after the commit."""
    ticket = get_ticket_for(user=user, ticket_id=ticket_id)
    if not isinstance(body, str) or len(body) > MAX_REPLY_CHARS:
        raise InvalidInput(
            f"The reply must be text of at most {MAX_REPLY_CHARS} characters.", code="too_long"
        )
    text = clean_body(body)
    if not text:
        raise InvalidInput("The reply is empty.", code="empty")
    # Live masking, as for chat messages: an agent cannot e-mail a full card number either.
    ctx = FilterContext(
        conversation_id=ticket.conversation_id,
        department_id=ticket.department_id,
        role="agent",
        field="ticket_reply",
    )
    text = filter_text(text, ctx)
    now = timezone.now()
    with transaction.atomic():
        reply = TicketMessage.objects.create(
            ticket=ticket, kind=TicketMessage.Kind.REPLY, author=user, body=text, created_at=now
        )
        fields = ["updated_at"]
        ticket.updated_at = now
        if ticket.status == Ticket.Status.OPEN:
            ticket.status = Ticket.Status.PENDING  # waiting for the visitor now
            fields.append("status")
        ticket.save(update_fields=fields)
        audit.record(
            action="ticket.reply",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
        )
        transaction.on_commit(lambda: _email_reply(reply_id=reply.pk))
    return reply


def _email_reply(*, reply_id: int) -> None:
    reply = TicketMessage.objects.select_related("ticket").get(pk=reply_id)
    ticket = readback.ticket(reply.ticket)
    send_mail(
        subject=f"Re: {ticket.subject} [ticket {reply.ticket_id}]",
        message=readback.text(reply.body, department_id=ticket.department_id),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[reply.ticket.email],
    )
    TicketMessage.objects.filter(pk=reply.pk, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )


def change_ticket_status(
    *, user: Any, ticket_id: int, status: Any, source_ip: str | None = None
) -> Ticket:
    if status not in Ticket.Status.values:
        raise InvalidInput("Unknown status.", code="invalid_field")
    ticket = get_ticket_for(user=user, ticket_id=ticket_id)
    with transaction.atomic():
        previous = ticket.status
        ticket.status = status
        ticket.updated_at = timezone.now()
        ticket.save(update_fields=["status", "updated_at"])
        audit.record(
            action="ticket.status",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
            details={"from": previous, "to": status},
        )
    return ticket


def assignable_agents(*, ticket: Ticket) -> list[AgentProfile]:
    """Who a ticket may be given to: active agents of its department (any agent without one)."""
    qs = AgentProfile.objects.filter(user__is_active=True).select_related("user")
    if ticket.department_id is not None:
        qs = qs.filter(departments=ticket.department_id)
    return list(qs.order_by("display_name").distinct())


def may_reassign_any(*, user: Any, ticket: Ticket) -> bool:
    """Supervisors of the ticket's department and administrators may give any ticket to anyone."""
    from compliance import roles

    if getattr(user, "is_superuser", False) or roles.is_administrator(user):
        return True
    if not roles.is_supervisor(user):
        return False
    if ticket.department_id is None:
        return True
    return ticket.department_id in roles.supervised_department_ids(user)


def assign_ticket(
    *, user: Any, ticket_id: int, assignee: Any, source_ip: str | None = None
) -> Ticket:
    """Give a ticket to an agent of its department, or to nobody.

    An agent may take an unassigned ticket, and hand its own ticket to a colleague or give it
    back; a ticket another agent holds is reassigned only by a supervisor of its department (or
    an administrator). Each change is kept on the ticket's thread and in the audit log.
    """
    from compliance.models import AuditEntry

    ticket = get_ticket_for(user=user, ticket_id=ticket_id)
    if assignee in (None, "", "none"):
        target = None
    else:
        try:
            target_id = int(assignee)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Choose an agent.", code="invalid_field") from exc
        target = next((a for a in assignable_agents(ticket=ticket) if a.pk == target_id), None)
        if target is None:
            raise InvalidInput(
                "That agent does not work in this ticket's department.", code="unknown_agent"
            )
    previous = ticket.assignee
    if (previous.pk if previous else None) == (target.pk if target else None):
        return ticket  # nothing changes: no note, no audit line
    own = AgentProfile.objects.filter(user=user).first()
    held_by_other = previous is not None and (own is None or previous.pk != own.pk)
    if held_by_other and not may_reassign_any(user=user, ticket=ticket):
        audit.record(
            action="ticket.assign",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
            outcome=AuditEntry.Outcome.DENIED,
            details={"from": previous.pk, "to": target.pk if target else None},
        )
        raise Conflict(
            f"{previous.display_name} holds this ticket; only a supervisor of its department can "
            "give it to someone else.",
            code="not_allowed",
        )
    who = own.display_name if own else (user.get_full_name() or user.get_username())
    now = timezone.now()
    with transaction.atomic():
        ticket.assignee = target
        ticket.updated_at = now
        ticket.save(update_fields=["assignee", "updated_at"])
        if target is None:
            line = f"{who} removed the assignee ({previous.display_name})."
        elif own is not None and target.pk == own.pk and previous is None:
            line = f"{who} took the ticket."
        else:
            line = f"{who} assigned the ticket to {target.display_name}" + (
                f" (was {previous.display_name})." if previous else "."
            )
        TicketMessage.objects.create(
            ticket=ticket, kind=TicketMessage.Kind.NOTE, author=user, body=line, created_at=now
        )
        audit.record(
            action="ticket.assign",
            actor=user,
            role=_role(user),
            source_ip=source_ip,
            target=f"ticket:{ticket.pk}",
            details={"from": previous.pk if previous else None, "to": target.pk if target else None},
        )
        if target is not None and (own is None or target.pk != own.pk):
            from chat import events

            events.send_event_on_commit(
                events.agent_group(target.user_id),
                {
                    "type": "ticket_assigned",
                    "ticket_id": ticket.pk,
                    "subject": ticket.subject,
                    "by": who,
                    "url": f"/tickets/{ticket.pk}/",
                },
            )
    return ticket
