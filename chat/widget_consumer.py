"""The visitor socket with the widget's frames: offline form, survey, transcript, invitations.

It extends the core VisitorConsumer instead of editing it, so the core protocol stays in one
place; the frames are documented in docs/protocol.md ("Widget frames").
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from chat import widget
from chat.consumers import VisitorConsumer


class WidgetVisitorConsumer(VisitorConsumer):
    handlers = {
        **VisitorConsumer.handlers,
        "offline": "on_offline",
        "survey": "on_survey",
        "transcript": "on_transcript",
        "invite_request": "on_invite_request",
        "invite_reply": "on_invite_reply",
    }

    async def on_start(self, data: dict[str, Any]) -> None:
        self._require_visitor()
        await database_sync_to_async(widget.check_prechat)(
            department_slug=data.get("department"),
            name=data.get("name"),
            email=data.get("email"),
            message=data.get("message"),
        )
        await super().on_start(data)
        if data.get("invitation_id") is not None and self.conversation_id is not None:
            await database_sync_to_async(widget.link_invitation)(
                visitor=self.visitor,
                invitation_id=data.get("invitation_id"),
                conversation_id=self.conversation_id,
            )

    async def on_offline(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        ticket = await database_sync_to_async(widget.submit_offline_message)(
            visitor=visitor,
            department_slug=data.get("department"),
            name=data.get("name"),
            email=data.get("email"),
            message=data.get("message"),
        )
        await self.send_frame(
            {"type": "offline_received", "ticket_id": ticket.pk, "email": ticket.email}
        )

    async def on_survey(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        survey = await database_sync_to_async(widget.submit_survey)(
            visitor=visitor,
            conversation_id=data.get("conversation_id"),
            rating=data.get("rating"),
            comment=data.get("comment"),
            answers=data.get("answers"),
        )
        await self.send_frame(
            {"type": "survey_received", "conversation_id": survey.conversation_id}
        )

    async def on_transcript(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        address = await database_sync_to_async(widget.email_transcript)(
            visitor=visitor, conversation_id=data.get("conversation_id"), email=data.get("email")
        )
        await self.send_frame(
            {
                "type": "transcript_sent",
                "conversation_id": data.get("conversation_id"),
                "email": address,
            }
        )

    async def on_invite_request(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        invitation = await database_sync_to_async(widget.send_invitation)(
            visitor=visitor, rule_id=data.get("rule_id"), page_url=data.get("page_url")
        )
        if invitation is None:
            await self.send_frame(
                {"type": "invitation", "invitation_id": None, "rule_id": data.get("rule_id")}
            )
            return
        message = await database_sync_to_async(
            lambda: invitation.rule.message if invitation.rule else ""
        )()
        await self.send_frame(
            {
                "type": "invitation",
                "invitation_id": invitation.pk,
                "rule_id": invitation.rule_id,
                "message": message,
                "department": await database_sync_to_async(lambda: invitation.department.slug)(),
            }
        )

    async def on_invite_reply(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        invitation = await database_sync_to_async(widget.answer_invitation)(
            visitor=visitor, invitation_id=data.get("invitation_id"), accepted=data.get("accepted")
        )
        await self.send_frame(
            {
                "type": "invitation_answered",
                "invitation_id": invitation.pk,
                "status": invitation.status,
            }
        )
