"""What the embeddable widget needs beyond the core chat: its configuration, the offline form,
the post-chat survey, transcripts by e-mail and proactive invitations.

Everything here is called from the visitor socket (chat/widget_consumer.py) or the public
configuration endpoint; each function takes the visitor (already identified by its token) and
checks that what it touches is that visitor's own.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import hooks, readback
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import (
    AgentProfile,
    Conversation,
    Department,
    InvitationRule,
    Message,
    ProactiveInvitation,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketMessage,
    Visitor,
    WidgetDepartmentSettings,
)
from chat.pipeline import FilterContext, clean_body, filter_text, validate_body

WEEKDAYS = WidgetDepartmentSettings.WEEKDAYS
MAX_COMMENT_CHARS = 2000
# A visit ends after this long without a page of the site open (the widget counts the seconds on
# the site the same way, static/chat/widget.js).
VISIT_SECONDS = 30 * 60


# --- configuration ------------------------------------------------------------------------


def department_settings(department: Department) -> WidgetDepartmentSettings:
    """The department's widget settings; without a row nothing is required and it is always open."""
    found = WidgetDepartmentSettings.objects.filter(department=department).first()
    if found is not None:
        return found
    return WidgetDepartmentSettings(
        department=department, require_name=False, require_email=False, require_question=False
    )


def is_within_business_hours(hours: dict[str, Any], *, now: datetime | None = None) -> bool:
    """Opening hours are in the organisation's time zone (TIME_ZONE); empty means always open."""
    if not hours:
        return True
    local = timezone.localtime(now or timezone.now(), timezone.get_default_timezone())
    day = hours.get(WEEKDAYS[local.weekday()])
    if not isinstance(day, list) or len(day) != 2:
        return False
    current = local.strftime("%H:%M")
    return str(day[0]) <= current < str(day[1])


def agent_online(department: Department) -> bool:
    return AgentProfile.objects.filter(
        departments=department, presence=AgentProfile.Presence.ONLINE
    ).exists()


def agent_has_capacity(department: Department) -> bool:
    from django.db.models import Count, F, Q

    return (
        AgentProfile.objects.filter(departments=department, presence=AgentProfile.Presence.ONLINE)
        .annotate(
            held=Count(
                "conversations", filter=Q(conversations__status__in=Conversation.HELD_STATUSES)
            )
        )
        .filter(held__lt=F("max_chats"))
        .exists()
    )


def department_available(department: Department, *, now: datetime | None = None) -> bool:
    """Whether the widget offers a live chat (else the offline form) for this department."""
    return is_within_business_hours(
        department_settings(department).business_hours, now=now
    ) and agent_online(department)


def widget_config() -> dict[str, Any]:
    """Public configuration the widget loads before it shows anything (no visitor data in it)."""
    departments = []
    rows = {s.department_id: s for s in WidgetDepartmentSettings.objects.all()}
    for department in Department.objects.all():
        conf = rows.get(department.pk) or department_settings(department)
        departments.append(
            {
                "slug": department.slug,
                "name": department.name,
                "available": is_within_business_hours(conf.business_hours)
                and agent_online(department),
                "offline_message": conf.offline_message,
                "require": {
                    "name": conf.require_name,
                    "email": conf.require_email,
                    "message": conf.require_question,
                },
            }
        )
    from chat.attachments import public_config

    return {
        "departments": departments,
        "attachments": public_config(),
        "survey_questions": [
            {"key": q.key, "text": q.text} for q in SurveyQuestion.objects.filter(enabled=True)
        ],
        "invitation_rules": [
            {
                "id": r.pk,
                "url_pattern": r.url_pattern,
                "seconds_on_page": r.seconds_on_page,
                "department": r.department.slug,
            }
            for r in InvitationRule.objects.filter(enabled=True).select_related("department")
        ],
    }


# --- pre-chat form --------------------------------------------------------------------------


def check_prechat(*, department_slug: Any, name: Any, email: Any, message: Any) -> None:
    """Refuse a start that leaves out a field the department requires (the core checks the rest)."""
    if not isinstance(department_slug, str):
        return  # the core answers with its own error
    department = Department.objects.filter(slug=department_slug).first()
    if department is None:
        return
    conf = department_settings(department)
    for required, value, label in (
        (conf.require_name, name, "your name"),
        (conf.require_email, email, "your e-mail address"),
        (conf.require_question, message, "your question"),
    ):
        if required and (not isinstance(value, str) or not value.strip()):
            raise InvalidInput(f"Please give {label}.", code="required")


# --- offline messages -------------------------------------------------------------------


def _email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 254:
        raise InvalidInput(
            "Please give a valid e-mail address so we can answer.", code="invalid_field"
        )
    value = value.strip()
    try:
        EmailValidator()(value)
    except ValidationError as exc:
        raise InvalidInput(
            "That e-mail address does not look valid.", code="invalid_field"
        ) from exc
    return value


def submit_offline_message(
    *, visitor: Visitor, department_slug: Any, name: Any, email: Any, message: Any
) -> Ticket:
    """An offline message becomes a ticket, and the visitor gets a confirmation e-mail."""
    if not isinstance(department_slug, str) or not department_slug:
        raise InvalidInput("Choose a department.", code="invalid_field")
    department = Department.objects.filter(slug=department_slug).first()
    if department is None:
        raise InvalidInput("No such department.", code="unknown_department")
    address = _email(email)
    body = clean_body(validate_body(message))
    if not body:
        raise InvalidInput("The message is empty.", code="empty")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise InvalidInput("name must be text of at most 100 characters.", code="invalid_field")
    ctx = FilterContext(
        conversation_id=None, department_id=department.pk, role="visitor", field="offline"
    )
    body = filter_text(body, ctx)
    name_text = filter_text(clean_body(name), ctx) if name else ""
    now = timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.create(
            subject=body.splitlines()[0][:200],
            source=Ticket.Source.OFFLINE,
            department=department,
            visitor=visitor,
            name=name_text,
            email=address,
            created_at=now,
            updated_at=now,
        )
        TicketMessage.objects.create(
            ticket=ticket, kind=TicketMessage.Kind.VISITOR, body=body, created_at=now
        )
        transaction.on_commit(lambda: _send_offline_confirmation(ticket_id=ticket.pk))
    return ticket


def _send_offline_confirmation(*, ticket_id: int) -> None:
    stored = Ticket.objects.select_related("department").get(pk=ticket_id)
    first = stored.messages.order_by("created_at", "pk").first()
    ticket = readback.ticket(stored)
    body = readback.text(first.body, department_id=ticket.department_id) if first else ""
    send_mail(
        subject=f"We received your message (ticket {ticket.pk})",
        message=(
            f"Hello {ticket.name or ''},\n\nThank you for your message to {ticket.department}. "
            f"We will answer you at this address.\n\nYour message:\n{body}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[ticket.email],
    )


# --- post-chat survey -------------------------------------------------------------------


def _visitors_conversation(*, visitor: Visitor, conversation_id: Any) -> Conversation:
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise InvalidInput("conversation_id must be an integer.", code="invalid_field")
    conversation = Conversation.objects.filter(pk=conversation_id, visitor=visitor).first()
    if conversation is None:
        raise NotFound()
    return conversation


def submit_survey(
    *, visitor: Visitor, conversation_id: Any, rating: Any, comment: Any = "", answers: Any = None
) -> SurveyResponse:
    """Only the chat's own visitor, once, after it ended; however late, it counts."""
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise InvalidInput("rating must be a whole number from 1 to 5.", code="invalid_field")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"comment must be text of at most {MAX_COMMENT_CHARS} characters.", code="invalid_field"
        )
    answers = answers or {}
    if not isinstance(answers, dict):
        raise InvalidInput("answers must be an object keyed by question.", code="invalid_field")
    known = set(SurveyQuestion.objects.filter(enabled=True).values_list("key", flat=True))
    conversation = _visitors_conversation(visitor=visitor, conversation_id=conversation_id)
    if conversation.is_open:
        raise Conflict("The survey opens when the chat has ended.", code="not_ended")
    ctx = FilterContext(
        conversation_id=conversation.pk,
        department_id=conversation.department_id,
        role="visitor",
        field="survey",
    )
    clean_answers = {}
    for key, value in answers.items():
        if key not in known:
            raise InvalidInput(f"Unknown survey question {str(key)[:40]!r}.", code="invalid_field")
        if not isinstance(value, str) or len(value) > MAX_COMMENT_CHARS:
            raise InvalidInput(
                "Each answer must be text of at most 2000 characters.", code="invalid_field"
            )
        text = clean_body(value)
        if text:
            clean_answers[key] = filter_text(text, ctx)
    text = clean_body(comment)
    try:
        with transaction.atomic():
            survey = SurveyResponse.objects.create(
                conversation=conversation,
                rating=rating,
                comment=filter_text(text, ctx) if text else "",
                answers=clean_answers,
                submitted_at=timezone.now(),
            )
            hooks.survey_submitted_on_commit(conversation.pk)
    except IntegrityError as exc:  # the one-to-one: a second survey of the same chat
        raise Conflict(
            "You already answered the survey of this chat. Thank you!", code="already_submitted"
        ) from exc
    return survey


# --- transcript -------------------------------------------------------------------------


def email_transcript(*, visitor: Visitor, conversation_id: Any, email: Any = None) -> str:
    """Public messages only: internal notes and whispers never leave the staff side."""
    conversation = _visitors_conversation(visitor=visitor, conversation_id=conversation_id)
    address = _email(email if email else visitor.email)
    messages = list(
        Message.objects.filter(conversation=conversation, visibility=Message.Visibility.PUBLIC)
        .select_related("sender__agent")
        .order_by("public_seq")
    )
    lines = []
    for m in messages:
        if m.role == Message.Role.VISITOR:
            who = "You"
        elif m.role == Message.Role.SYSTEM or m.sender is None:
            who = "—"
        else:
            agent = getattr(m.sender, "agent", None)
            who = agent.display_name if agent is not None else "Agent"
        body = readback.text(m.body, department_id=conversation.department_id)
        lines.append(f"[{timezone.localtime(m.created_at):%Y-%m-%d %H:%M}] {who}: {body}")
    send_mail(
        subject=f"Transcript of your chat with {conversation.department.name}",
        message="\n".join(lines) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[address],
    )
    return address


# --- proactive invitations --------------------------------------------------------------


def send_invitation(*, visitor: Visitor, rule_id: Any, page_url: Any) -> ProactiveInvitation | None:
    """Record an invitation if the rule applies now; None when it does not (say, nobody free)."""
    from chat.services import _url

    if not isinstance(rule_id, int) or isinstance(rule_id, bool):
        raise InvalidInput("rule_id must be an integer.", code="invalid_field")
    rule = (
        InvitationRule.objects.filter(pk=rule_id, enabled=True).select_related("department").first()
    )
    if rule is None:
        raise NotFound("No such invitation rule.")
    url = _url(page_url, field="page_url")
    if not url or not fnmatch.fnmatchcase(url, rule.url_pattern):
        return None
    if rule.only_when_capacity and not agent_has_capacity(rule.department):
        return None
    if Conversation.objects.filter(visitor=visitor, status__in=Conversation.OPEN_STATUSES).exists():
        return None
    from chat.blocks import is_blocked

    if is_blocked(visitor=visitor):
        return None  # a blocked visitor is never invited to chat
    now = timezone.now()
    earlier = (
        ProactiveInvitation.objects.filter(
            visitor=visitor, rule=rule, sent_at__gte=now - timedelta(seconds=VISIT_SECONDS)
        )
        .order_by("-sent_at", "-pk")
        .first()
    )
    if earlier is not None:
        # One invitation per rule and visit: one left unanswered (the visitor went to another
        # page) is shown again, not recorded again; an answered one is not repeated.
        return earlier if earlier.status == ProactiveInvitation.Status.SENT else None
    return ProactiveInvitation.objects.create(
        rule=rule, visitor=visitor, department=rule.department, page_url=url, sent_at=now
    )


def answer_invitation(
    *, visitor: Visitor, invitation_id: Any, accepted: Any
) -> ProactiveInvitation:
    if not isinstance(invitation_id, int) or isinstance(invitation_id, bool):
        raise InvalidInput("invitation_id must be an integer.", code="invalid_field")
    if not isinstance(accepted, bool):
        raise InvalidInput("accepted must be true or false.", code="invalid_field")
    status = (
        ProactiveInvitation.Status.ACCEPTED if accepted else ProactiveInvitation.Status.DECLINED
    )
    # Conditional update: only a sent invitation can be answered, and only once.
    updated = ProactiveInvitation.objects.filter(
        pk=invitation_id, visitor=visitor, status=ProactiveInvitation.Status.SENT
    ).update(status=status, responded_at=timezone.now())
    invitation = ProactiveInvitation.objects.filter(pk=invitation_id, visitor=visitor).first()
    if invitation is None:
        raise NotFound("No such invitation.")
    if not updated:
        raise Conflict("This invitation was already answered.", code="already_answered")
    return invitation


def link_invitation(*, visitor: Visitor, invitation_id: Any, conversation_id: int) -> None:
    """The chat a visitor started after accepting an invitation counts as that invitation's."""
    if not isinstance(invitation_id, int) or isinstance(invitation_id, bool):
        return
    ProactiveInvitation.objects.filter(
        pk=invitation_id,
        visitor=visitor,
        status=ProactiveInvitation.Status.ACCEPTED,
        conversation__isnull=True,
    ).update(conversation_id=conversation_id)
