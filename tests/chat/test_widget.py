"""The widget's frames and configuration over the real ASGI application (docs/protocol.md,
"Widget frames"): good input does what the visitor expects, bad input gets a clear error and
changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.test import Client
from django.utils import timezone

from chat import hooks, services
from chat.models import (
    AgentProfile,
    AllowedOrigin,
    Conversation,
    InvitationRule,
    Message,
    ProactiveInvitation,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    WidgetDepartmentSettings,
)
from chat.pipeline import Inbound, run
from config.asgi import application
from tests.chat.helpers import drain, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "4111 1111 1111 1111"


def until_type(kind: str):
    return lambda f: f["type"] == kind


async def error_of(comm: WebsocketCommunicator, frame: dict) -> dict:
    await comm.send_json_to(frame)
    return await receive_until(comm, until_type("error"))


def online(agent: AgentProfile) -> None:
    AgentProfile.objects.filter(pk=agent.pk).update(presence=AgentProfile.Presence.ONLINE)


def ended_chat(department, *, email: str = "vera@example.com") -> tuple[Conversation, str]:
    visitor, token = services.create_visitor()
    conversation = services.start_conversation(
        visitor=visitor,
        department_slug=department.slug,
        name="Vera",
        email=email,
        message="Hello there",
    )
    services.end_by_visitor(visitor=visitor)
    conversation.refresh_from_db()
    return conversation, token


# --- configuration and allowed origins ----------------------------------------------------


def test_config_tells_an_allowed_site_which_departments_are_available(department, agent):
    AllowedOrigin.objects.create(origin="http://shop.test")
    WidgetDepartmentSettings.objects.create(
        department=department, require_email=True, offline_message="Back at 9."
    )
    client = Client()
    body = client.get("/widget/config/", HTTP_ORIGIN="http://shop.test").json()
    assert body["allowed"] is True
    support = next(d for d in body["departments"] if d["slug"] == "support")
    assert support["available"] is False  # nobody online: the widget shows the offline form
    assert support["offline_message"] == "Back at 9."
    assert support["require"] == {"name": True, "email": True, "message": False}
    online(agent)
    response = client.get("/widget/config/", HTTP_ORIGIN="http://shop.test")
    assert (
        next(d for d in response.json()["departments"] if d["slug"] == "support")["available"]
        is True
    )
    assert response["Access-Control-Allow-Origin"] == "*"


def test_config_refuses_a_site_that_is_not_allowed_with_a_message(department):
    AllowedOrigin.objects.create(origin="http://shop.test")
    AllowedOrigin.objects.create(origin="http://off.test", enabled=False)
    for origin in ("http://evil.test", "http://off.test", "null"):
        body = Client().get("/widget/config/", HTTP_ORIGIN=origin).json()
        assert body["allowed"] is False
        assert "not available on this site" in body["message"]
        assert "departments" not in body


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://shop.test", True), ("http://shop.test:8080", False), ("http://evil.test", False)],
)
async def test_visitor_handshake_follows_the_origins_allowed_in_admin(department, origin, allowed):
    await database_sync_to_async(AllowedOrigin.objects.create)(origin="http://shop.test")
    comm = WebsocketCommunicator(
        application, "/ws/visitor/", headers=[(b"origin", origin.encode())]
    )
    connected, _ = await comm.connect()
    assert connected is allowed
    await comm.disconnect()


async def test_allowed_origins_never_open_the_agent_socket(agent):
    await database_sync_to_async(AllowedOrigin.objects.create)(origin="http://shop.test")
    comm = WebsocketCommunicator(
        application, "/ws/agent/", headers=[(b"origin", b"http://shop.test")]
    )
    connected, _ = await comm.connect()
    assert connected is False


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://shop.example", True),
        (".example.com", True),
        ("*", False),
        ("https://shop.example/path", False),
        ("ftp://x.example", False),
        ("shop example", False),
    ],
)
def test_allowed_origin_admin_validation(db, value, ok):
    from django.core.exceptions import ValidationError

    origin = AllowedOrigin(origin=value)
    if ok:
        origin.full_clean()
    else:
        with pytest.raises(ValidationError):
            origin.full_clean()


# --- pre-chat form ----------------------------------------------------------------------------


async def test_required_prechat_fields_are_enforced_per_department(department, other_department):
    await database_sync_to_async(WidgetDepartmentSettings.objects.create)(
        department=department, require_name=True, require_email=True, require_question=True
    )
    comm, _ = await visitor_socket()
    error = await error_of(
        comm, {"type": "start", "department": "support", "name": "Vera", "message": "Hi"}
    )
    assert error["code"] == "required" and "e-mail" in error["message"]
    error = await error_of(
        comm,
        {
            "type": "start",
            "department": "support",
            "name": " ",
            "email": "v@example.com",
            "message": "Hi",
        },
    )
    assert error["code"] == "required" and "name" in error["message"]
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    # Billing has no settings: nothing is required there.
    await comm.send_json_to({"type": "start", "department": "billing"})
    state = await receive_until(comm, until_type("conversation"))
    assert state["status"] == "queued"
    await comm.disconnect()


async def test_a_complete_prechat_form_starts_the_chat(department):
    await database_sync_to_async(WidgetDepartmentSettings.objects.create)(
        department=department, require_email=True
    )
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {
            "type": "start",
            "department": "support",
            "name": "Vera",
            "email": "v@example.com",
            "message": "Hello",
            "client_id": "c1",
        }
    )
    state = await receive_until(comm, until_type("conversation"))
    assert state["queue_position"] == 1
    await comm.disconnect()


# --- offline messages -----------------------------------------------------------------------


async def test_offline_message_becomes_a_masked_ticket_and_a_confirmation_email(department):
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {
            "type": "offline",
            "department": "support",
            "name": "Vera",
            "email": "vera@example.com",
            "message": f"Please call me back.\nMy card is {CARD}",
        }
    )
    answer = await receive_until(comm, until_type("offline_received"))
    ticket = await database_sync_to_async(Ticket.objects.get)(pk=answer["ticket_id"])
    assert ticket.source == Ticket.Source.OFFLINE and ticket.status == Ticket.Status.OPEN
    assert ticket.email == "vera@example.com" and ticket.subject == "Please call me back."
    body = await database_sync_to_async(lambda: ticket.messages.get().body)()
    assert CARD not in body and "My card is XXXX" in body  # masked by the compliance filter
    assert len(mail.outbox) == 1
    assert (
        mail.outbox[0].to == ["vera@example.com"]
        and f"ticket {ticket.pk}" in mail.outbox[0].subject
    )
    assert CARD not in mail.outbox[0].body
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"department": "support", "email": "", "message": "Hi"}, "invalid_field"),
        ({"department": "support", "email": "not-an-address", "message": "Hi"}, "invalid_field"),
        ({"department": "support", "email": "v@example.com", "message": "   "}, "empty"),
        ({"department": "support", "email": "v@example.com"}, "invalid"),
        ({"department": "support", "email": "v@example.com", "message": "x" * 4001}, "too_long"),
        ({"department": "nope", "email": "v@example.com", "message": "Hi"}, "unknown_department"),
        ({"department": 3, "email": "v@example.com", "message": "Hi"}, "invalid_field"),
        (
            {"department": "support", "email": "v@example.com", "message": "Hi", "name": ["x"]},
            "invalid_field",
        ),
    ],
)
async def test_bad_offline_messages_are_refused_and_store_nothing(department, frame, code):
    comm, _ = await visitor_socket()
    error = await error_of(comm, {"type": "offline", **frame})
    assert error["code"] == code
    assert await database_sync_to_async(Ticket.objects.count)() == 0
    assert mail.outbox == []
    await comm.disconnect()


async def test_widget_frames_need_hello_first(department):
    comm, _ = await visitor_socket(hello=False)
    for kind in ("offline", "survey", "transcript", "invite_request", "invite_reply"):
        error = await error_of(comm, {"type": kind})
        assert error["code"] == "hello_required"
    await comm.disconnect()


# --- the survey ---------------------------------------------------------------------------


async def test_survey_is_stored_once_with_extra_answers_and_fires_the_hook(department):
    await database_sync_to_async(SurveyQuestion.objects.create)(
        key="solved", text="Was your problem solved?"
    )
    conversation, token = await database_sync_to_async(ended_chat)(department)
    fired: list[int] = []
    hooks.register_on_survey_submitted(fired.append)
    try:
        comm, _ = await visitor_socket(token=token)
        await comm.send_json_to(
            {
                "type": "survey",
                "conversation_id": conversation.pk,
                "rating": 4,
                "comment": f"Quick. Card {CARD}",
                "answers": {"solved": "Yes"},
            }
        )
        answer = await receive_until(comm, until_type("survey_received"))
        assert answer["conversation_id"] == conversation.pk
        survey = await database_sync_to_async(SurveyResponse.objects.get)(conversation=conversation)
        assert (
            survey.rating == 4
            and survey.answers == {"solved": "Yes"}
            and CARD not in survey.comment
        )
        assert fired == [conversation.pk]
        error = await error_of(
            comm, {"type": "survey", "conversation_id": conversation.pk, "rating": 1}
        )
        assert error["code"] == "already_submitted"
        assert (
            await database_sync_to_async(SurveyResponse.objects.get)(conversation=conversation)
        ).rating == 4
        await comm.disconnect()
    finally:
        hooks._on_survey_submitted.remove(fired.append)


async def test_a_late_survey_still_counts(department):
    conversation, token = await database_sync_to_async(ended_chat)(department)
    long_ago = timezone.now() - timedelta(days=3)
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(
        ended_at=long_ago
    )
    comm, _ = await visitor_socket(token=token)
    await comm.send_json_to({"type": "survey", "conversation_id": conversation.pk, "rating": 5})
    await receive_until(comm, until_type("survey_received"))
    assert await database_sync_to_async(
        SurveyResponse.objects.filter(conversation=conversation).exists
    )()
    await comm.disconnect()


async def test_only_the_chats_own_visitor_may_answer_its_survey(department):
    conversation, _ = await database_sync_to_async(ended_chat)(department)
    comm, _ = await visitor_socket()  # somebody else
    error = await error_of(
        comm, {"type": "survey", "conversation_id": conversation.pk, "rating": 5}
    )
    assert error["code"] == "not_found"
    assert not await database_sync_to_async(SurveyResponse.objects.exists)()
    await comm.disconnect()


async def test_survey_waits_until_the_chat_has_ended(department):
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {"type": "start", "department": "support", "message": "Hi", "client_id": "a"}
    )
    state = await receive_until(comm, until_type("conversation"))
    error = await error_of(
        comm, {"type": "survey", "conversation_id": state["conversation_id"], "rating": 5}
    )
    assert error["code"] == "not_ended"
    await comm.disconnect()


@pytest.mark.parametrize(
    "fields",
    [
        {"rating": 0},
        {"rating": 6},
        {"rating": "5"},
        {"rating": True},
        {"rating": 4.5},
        {},
        {"rating": 3, "comment": 7},
        {"rating": 3, "comment": "x" * 2001},
        {"rating": 3, "answers": ["x"]},
        {"rating": 3, "answers": {"unknown": "x"}},
        {"rating": 3, "conversation_id": "1"},
    ],
)
async def test_bad_surveys_are_refused(department, fields):
    conversation, token = await database_sync_to_async(ended_chat)(department)
    comm, _ = await visitor_socket(token=token)
    error = await error_of(comm, {"type": "survey", "conversation_id": conversation.pk, **fields})
    assert error["code"] == "invalid_field"
    assert not await database_sync_to_async(SurveyResponse.objects.exists)()
    await comm.disconnect()


# --- transcript ---------------------------------------------------------------------------


async def test_transcript_email_holds_public_messages_only(department, agent):
    conversation, token = await database_sync_to_async(ended_chat)(department)

    def add_staff_lines() -> None:
        for visibility, body in (
            (Message.Visibility.PUBLIC, "Your parcel left today."),
            (Message.Visibility.INTERNAL, "INTERNAL: customer was rude"),
            (Message.Visibility.WHISPER, "WHISPER: check the refund"),
        ):
            run(
                Inbound(
                    conversation_id=conversation.pk,
                    role=Message.Role.AGENT,
                    sender_id=agent.user_id,
                    body=body,
                    visibility=visibility,
                    whisper_to_id=agent.user_id
                    if visibility == Message.Visibility.WHISPER
                    else None,
                )
            )

    await database_sync_to_async(add_staff_lines)()
    comm, _ = await visitor_socket(token=token)
    await comm.send_json_to({"type": "transcript", "conversation_id": conversation.pk})
    answer = await receive_until(comm, until_type("transcript_sent"))
    assert answer["email"] == "vera@example.com"
    (sent,) = mail.outbox
    assert "Hello there" in sent.body and "Alice Agent: Your parcel left today." in sent.body
    assert "INTERNAL" not in sent.body and "WHISPER" not in sent.body
    await comm.disconnect()


async def test_transcript_refusals(department):
    conversation, token = await database_sync_to_async(ended_chat)(department, email="")
    comm, _ = await visitor_socket(token=token)
    error = await error_of(comm, {"type": "transcript", "conversation_id": conversation.pk})
    assert error["code"] == "invalid_field"  # no address known and none given
    error = await error_of(
        comm, {"type": "transcript", "conversation_id": conversation.pk, "email": "bad@"}
    )
    assert error["code"] == "invalid_field"
    stranger, _ = await visitor_socket()
    error = await error_of(
        stranger,
        {"type": "transcript", "conversation_id": conversation.pk, "email": "thief@example.com"},
    )
    assert error["code"] == "not_found"
    assert mail.outbox == []
    await comm.disconnect()
    await stranger.disconnect()


# --- proactive invitations --------------------------------------------------------------


async def test_invitation_sent_accepted_and_linked_to_the_chat(department, agent):
    await database_sync_to_async(online)(agent)
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="Pricing",
        department=department,
        url_pattern="*/pricing*",
        seconds_on_page=5,
        message="Need help?",
    )
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/pricing"}
    )
    invitation = await receive_until(comm, until_type("invitation"))
    assert invitation["message"] == "Need help?" and invitation["department"] == "support"
    await comm.send_json_to(
        {"type": "invite_reply", "invitation_id": invitation["invitation_id"], "accepted": True}
    )
    answered = await receive_until(comm, until_type("invitation_answered"))
    assert answered["status"] == "accepted"
    await comm.send_json_to(
        {"type": "start", "department": "support", "invitation_id": invitation["invitation_id"]}
    )
    state = await receive_until(comm, until_type("conversation"))
    row = await database_sync_to_async(ProactiveInvitation.objects.get)(
        pk=invitation["invitation_id"]
    )
    assert row.status == "accepted" and row.conversation_id == state["conversation_id"]
    assert row.page_url == "https://shop.test/pricing" and row.responded_at is not None
    error = await error_of(
        comm, {"type": "invite_reply", "invitation_id": row.pk, "accepted": False}
    )
    assert error["code"] == "already_answered"
    await comm.disconnect()


async def test_invitation_declined_is_recorded(department, agent):
    await database_sync_to_async(online)(agent)
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="All", department=department, url_pattern="*"
    )
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/"}
    )
    invitation = await receive_until(comm, until_type("invitation"))
    await comm.send_json_to(
        {"type": "invite_reply", "invitation_id": invitation["invitation_id"], "accepted": False}
    )
    await receive_until(comm, until_type("invitation_answered"))
    row = await database_sync_to_async(ProactiveInvitation.objects.get)()
    assert row.status == "declined" and row.conversation_id is None
    await comm.disconnect()


async def test_no_invitation_without_capacity_or_on_another_page(department, agent):
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="Pricing", department=department, url_pattern="*/pricing*"
    )
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/pricing"}
    )
    assert (await receive_until(comm, until_type("invitation")))[
        "invitation_id"
    ] is None  # nobody online
    await database_sync_to_async(online)(agent)
    await comm.send_json_to(
        {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/about"}
    )
    assert (await receive_until(comm, until_type("invitation")))["invitation_id"] is None
    assert not await database_sync_to_async(ProactiveInvitation.objects.exists)()
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (
            {"type": "invite_request", "rule_id": "1", "page_url": "https://x.test/"},
            "invalid_field",
        ),
        ({"type": "invite_request", "rule_id": 999, "page_url": "https://x.test/"}, "not_found"),
        ({"type": "invite_reply", "invitation_id": None, "accepted": True}, "invalid_field"),
        ({"type": "invite_reply", "invitation_id": 999, "accepted": True}, "not_found"),
    ],
)
async def test_bad_invitation_frames(department, frame, code):
    comm, _ = await visitor_socket()
    assert (await error_of(comm, frame))["code"] == code
    await comm.disconnect()


async def test_an_invitation_of_another_visitor_cannot_be_answered(department, agent):
    await database_sync_to_async(online)(agent)
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="All", department=department, url_pattern="*"
    )
    owner, _ = await visitor_socket()
    await owner.send_json_to(
        {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/"}
    )
    invitation = await receive_until(owner, until_type("invitation"))
    other, _ = await visitor_socket()
    error = await error_of(
        other,
        {"type": "invite_reply", "invitation_id": invitation["invitation_id"], "accepted": True},
    )
    assert error["code"] == "not_found"
    await owner.disconnect()
    await other.disconnect()
    assert (await database_sync_to_async(ProactiveInvitation.objects.get)()).status == "sent"


# --- business hours -----------------------------------------------------------------------


def test_business_hours_are_read_in_the_organisations_time_zone(settings, department, agent):
    from chat import widget

    settings.TIME_ZONE = "Europe/Berlin"
    hours = {"mon": ["09:00", "17:00"]}
    # Monday 2026-11-23 07:30 UTC is 08:30 in Berlin: closed; 08:30 UTC is 09:30: open.
    assert not widget.is_within_business_hours(hours, now=datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    assert widget.is_within_business_hours(hours, now=datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
    assert not widget.is_within_business_hours(hours, now=datetime(2026, 11, 24, 8, 30, tzinfo=UTC))
    assert widget.is_within_business_hours({}, now=timezone.now())
    WidgetDepartmentSettings.objects.create(department=department, business_hours={"sun": []})
    online(agent)
    # Closed all week except what is listed: online agents do not open a closed department.
    assert not widget.department_available(
        department, now=datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "hours", [[], {"monday": ["09:00", "17:00"]}, {"mon": ["17:00", "09:00"]}, {"mon": ["9", "17"]}]
)
def test_bad_business_hours_are_refused_in_admin(department, hours):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        WidgetDepartmentSettings(department=department, business_hours=hours).full_clean()


async def test_drain_leaves_nothing_unexpected_after_an_offline_message(department):
    # An offline message opens no chat: the visitor's socket gets its answer and nothing else.
    comm, _ = await visitor_socket()
    await comm.send_json_to(
        {"type": "offline", "department": "support", "email": "v@example.com", "message": "Hi"}
    )
    frames = await drain(comm, timeout=0.5)
    assert [f["type"] for f in frames] == ["offline_received"]
    assert not await database_sync_to_async(Conversation.objects.exists)()


def test_demo_host_page_embeds_the_widget_from_the_other_local_origin(db):
    page = Client().get("/widget/demo/", HTTP_HOST="localhost:8000").content.decode()
    assert (
        '<script src="http://127.0.0.1:8000/static/chat/widget.js" data-department="support" async>'
        in page
    )
    page = Client().get("/widget/demo/", HTTP_HOST="127.0.0.1:8000").content.decode()
    assert 'src="http://localhost:8000/static/chat/widget.js"' in page


def test_seed_demo_sets_up_the_widget_demo_and_can_run_twice(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    assert InvitationRule.objects.get().url_pattern == "*/widget/demo/?page=pricing*"
    assert SurveyQuestion.objects.count() == 1
    assert WidgetDepartmentSettings.objects.get().require_name is True
