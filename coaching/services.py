"""Every state change of coaching: sampling, reviewing, sharing, the agent's answer, mock chats."""

from __future__ import annotations

import hashlib
from datetime import datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404
from django.utils import timezone

from chat import oversight
from chat.models import Assignment, Conversation, Message, SurveyResponse
from coaching import access
from coaching.models import (
    Annotation,
    Answer,
    Criterion,
    MockChat,
    Review,
    SamplingRule,
    Scenario,
    Scorecard,
)
from compliance import audit

# --- sampling --------------------------------------------------------------------------------


def in_random_share(*, rule_id: int, conversation_id: int, percent: int) -> bool:
    """Reproducible: the same rule and chat always give the same answer, on any machine."""
    digest = hashlib.sha256(f"coaching-sample:{rule_id}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def _rating(conversation_id: int) -> int | None:
    return (
        SurveyResponse.objects.filter(conversation_id=conversation_id)
        .values_list("rating", flat=True)
        .first()
    )


def rule_matches(*, rule: SamplingRule, conversation: Conversation, rating: int | None) -> bool:
    department_ids = {d.pk for d in rule.departments.all()}
    if department_ids and conversation.department_id not in department_ids:
        return False
    agent_ids = {a.pk for a in rule.agents.all()}
    if agent_ids and conversation.agent_id not in agent_ids:
        return False
    if (
        rule.only_transferred
        and not Assignment.objects.filter(
            conversation_id=conversation.pk, end_reason=Assignment.EndReason.TRANSFERRED
        ).exists()
    ):
        return False
    if rule.min_wait_seconds is not None:
        start = conversation.queued_at or conversation.created_at
        answered = conversation.assigned_at or conversation.ended_at
        if (
            start is None
            or answered is None
            or (answered - start).total_seconds() <= rule.min_wait_seconds
        ):
            return False
    if (
        rule.canned_response_id is not None
        and not Message.objects.filter(
            conversation_id=conversation.pk, meta__canned__id=rule.canned_response_id
        ).exists()
    ):
        return False
    if rule.mode == SamplingRule.Mode.ALL:
        return True
    if rule.mode == SamplingRule.Mode.RANDOM:
        return in_random_share(
            rule_id=rule.pk, conversation_id=conversation.pk, percent=rule.percent or 0
        )
    score_hit = rating is not None and (
        rating <= (rule.score or 0)
        if rule.mode == SamplingRule.Mode.LOW_SCORE
        else rating >= (rule.score or 6)
    )
    if score_hit:
        return True
    return bool(rule.percent_of_rest) and in_random_share(
        rule_id=rule.pk, conversation_id=conversation.pk, percent=rule.percent_of_rest or 0
    )


def _start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return timezone.make_aware(datetime.combine(local.date(), time.min), local.tzinfo)


def _pick_reviewer(rule: SamplingRule, department_id: int) -> Any:
    """Of the rule's reviewers who oversee the chat's department, the one with the fewest open
    reviews; the oldest account on a tie. A reviewer outside the department would be handed a
    chat it may not read (and its queue would not show it)."""
    return (
        rule.reviewers.filter(pk__in=access.overseers_of(department_id))
        .annotate(
            open_reviews=Count(
                "coaching_reviews",
                filter=Q(
                    coaching_reviews__status__in=[Review.Status.PENDING, Review.Status.IN_REVIEW]
                ),
            )
        )
        .order_by("open_reviews", "pk")
        .first()
    )


def sample_conversation(*, conversation_id: int, now: datetime | None = None) -> list[Review]:
    """Evaluate every enabled rule for one ended chat; returns the reviews created now.

    Runs when the chat ends and again when its survey arrives; each rule adds a chat once at
    most (unique constraint), so the second run only adds what the score newly matches.
    """
    now = now or timezone.now()
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if (
        conversation is None
        or conversation.is_training  # mock chats are practice, never quality samples
        or conversation.status != Conversation.Status.ENDED
        or conversation.agent_id is None
    ):
        return []
    rating = _rating(conversation.pk)
    created = []
    rules = (
        SamplingRule.objects.filter(enabled=True)
        .prefetch_related("departments", "agents")
        .order_by("pk")
    )
    for rule in rules:
        if not rule_matches(rule=rule, conversation=conversation, rating=rating):
            continue
        with transaction.atomic():
            # The rule's row lock serialises its evaluations: the daily cap and the "once per
            # rule" check cannot both pass in two workers at the same moment.
            locked = SamplingRule.objects.select_for_update().get(pk=rule.pk)
            if Review.objects.filter(rule=locked, conversation=conversation).exists():
                continue
            if locked.daily_cap is not None:
                today = Review.objects.filter(
                    rule=locked, created_at__gte=_start_of_day(now)
                ).count()
                if today >= locked.daily_cap:
                    continue
            reviewer = _pick_reviewer(locked, conversation.department_id)
            if reviewer is None:
                continue
            created.append(
                Review.objects.create(
                    conversation=conversation,
                    rule=locked,
                    reviewer=reviewer,
                    agent_id=conversation.agent_id,
                    created_at=now,
                )
            )
    return created


# --- reviewing -------------------------------------------------------------------------------


def _review_for_reviewer(*, user: Any, review_id: int) -> Review:
    from coaching.selectors import get_review_for_supervisor

    return get_review_for_supervisor(user=user, review_id=review_id)


def start_review(*, user: Any, review_id: int) -> Review:
    review = _review_for_reviewer(user=user, review_id=review_id)
    Review.objects.filter(pk=review.pk, status=Review.Status.PENDING).update(
        status=Review.Status.IN_REVIEW
    )
    review.refresh_from_db(fields=["status"])
    return review


def write_summary(*, user: Any, review_id: int, summary: str) -> Review:
    """The reviewer's comment on the whole chat; writing one starts the review."""
    review = _review_for_reviewer(user=user, review_id=review_id)
    review.summary = (summary or "").strip()
    fields = ["summary"]
    if review.status == Review.Status.PENDING:
        review.status = Review.Status.IN_REVIEW
        fields.append("status")
    review.save(update_fields=fields)
    return review


def annotate(
    *,
    user: Any,
    review_id: int,
    category: str,
    comment: str,
    message_id: int | None = None,
    canned_fitted: bool | None = None,
) -> Annotation:
    review = _review_for_reviewer(user=user, review_id=review_id)
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": "Write what the agent should know."})
    if category not in Annotation.Category.values:
        raise ValidationError({"category": "Choose praise, coaching or compliance."})
    message = None
    if message_id is not None:
        message = Message.objects.filter(
            pk=message_id, conversation_id=review.conversation_id
        ).first()
        if message is None:
            raise ValidationError({"message": "That message is not part of this chat."})
        if canned_fitted is not None and not (message.meta or {}).get("canned"):
            raise ValidationError({"canned_fitted": "Only a canned answer can fit or not fit."})
    elif canned_fitted is not None:
        raise ValidationError({"canned_fitted": "Only a canned answer can fit or not fit."})
    with transaction.atomic():
        annotation = Annotation.objects.create(
            review=review,
            message=message,
            category=category,
            comment=comment,
            canned_fitted=canned_fitted,
            author=user,
            created_at=timezone.now(),
        )
        Review.objects.filter(pk=review.pk, status=Review.Status.PENDING).update(
            status=Review.Status.IN_REVIEW
        )
    return annotation


def score_of(*, criteria: list[Criterion], values: dict[int, int]) -> Decimal:
    """Weighted share of the best possible answers, 0 to 100: yes = 1 of 1, a 4 = 3 of 4 steps."""
    total = sum(c.weight for c in criteria)
    earned = Decimal(0)
    for c in criteria:
        value = values[c.pk]
        fraction = Decimal(value) if c.kind == Criterion.Kind.YES_NO else Decimal(value - 1) / 4
        earned += fraction * c.weight
    return (earned * 100 / total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def fill_scorecard(
    *, user: Any, review_id: int, scorecard_id: int, values: dict[int, int]
) -> Review:
    review = _review_for_reviewer(user=user, review_id=review_id)
    scorecard = Scorecard.objects.filter(pk=scorecard_id, active=True).first()
    if scorecard is None:
        raise ValidationError({"scorecard": "No such active scorecard."})
    criteria = list(scorecard.criteria.all())
    if not criteria:
        raise ValidationError({"scorecard": "This scorecard has no criteria yet."})
    errors = {}
    for c in criteria:
        value = values.get(c.pk)
        allowed = (0, 1) if c.kind == Criterion.Kind.YES_NO else (1, 2, 3, 4, 5)
        if value not in allowed:
            errors[f"criterion_{c.pk}"] = f"{c.label}: answer " + (
                "yes or no." if len(allowed) == 2 else "1 to 5."
            )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        Answer.objects.filter(review=review).delete()
        Answer.objects.bulk_create(
            [Answer(review=review, criterion=c, value=values[c.pk]) for c in criteria]
        )
        review.scorecard = scorecard
        review.score = score_of(criteria=criteria, values=values)
        fields = ["scorecard", "score"]
        if review.status == Review.Status.PENDING:
            review.status = Review.Status.IN_REVIEW
            fields.append("status")
        review.save(update_fields=fields)
    return review


def share_review(*, user: Any, review_id: int, summary: str | None = None) -> Review:
    review = _review_for_reviewer(user=user, review_id=review_id)
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        if review.status in (Review.Status.SHARED, Review.Status.ACKNOWLEDGED):
            return review  # sharing twice is harmless
        fields = ["status", "shared_at"]
        if summary is not None:
            review.summary = summary.strip()
            fields.append("summary")
        review.status = Review.Status.SHARED
        review.shared_at = timezone.now()
        review.save(update_fields=fields)
        audit.record(
            action="coaching.review_shared",
            actor=user,
            role=audit.role_of(user),
            target=f"review:{review.pk}",
            details={"conversation_id": review.conversation_id, "agent_id": review.agent_id},
        )
    return review


def acknowledge_review(*, user: Any, review_id: int, reply: str = "") -> Review:
    from coaching.selectors import get_review_for_agent

    review = get_review_for_agent(user=user, review_id=review_id)
    reply = (reply or "").strip()
    if len(reply) > 5000:
        raise ValidationError({"reply": "A reply is at most 5000 characters."})
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        now = timezone.now()
        fields = []
        if review.status == Review.Status.SHARED:
            review.status = Review.Status.ACKNOWLEDGED
            review.acknowledged_at = now
            fields += ["status", "acknowledged_at"]
        if reply:
            review.agent_reply = reply
            review.replied_at = now
            fields += ["agent_reply", "replied_at"]
        if fields:
            review.save(update_fields=fields)
    return review


# --- mock chats ------------------------------------------------------------------------------


def review_mock_chat(*, user: Any, mock_id: Any) -> Review:
    """Open (or reopen) the supervisor's own review of a mock chat it played.

    Sampling rules never pick training chats, so this is how one is reviewed and annotated like
    a real chat; once per supervisor and chat (constraint `manual_review_once_per_reviewer`).
    """
    from coaching.selectors import mock_chats_for_supervisor

    mock = (
        mock_chats_for_supervisor(user=user).filter(pk=mock_id).first()
        if isinstance(mock_id, int)
        else None
    )
    if mock is None:
        raise Http404("No such mock chat of yours.")
    conversation = mock.conversation
    if conversation.status != Conversation.Status.ENDED or conversation.agent_id is None:
        raise ValidationError("End the mock chat (an agent must have accepted it) before reviewing it.")
    with transaction.atomic():
        review, _ = Review.objects.get_or_create(
            conversation=conversation,
            reviewer=user,
            by_hand=True,
            defaults={"agent_id": conversation.agent_id, "created_at": timezone.now()},
        )
    return review


def start_mock_chat(
    *, user: Any, scenario_id: int, agent_id: int | None = None, department_id: int | None = None
) -> tuple[MockChat, str]:
    """A training chat the supervisor plays as the visitor; returns it and the visitor token."""
    if not access.is_supervisor(user):
        raise PermissionDenied("Only supervisors start mock chats.")
    scenario = Scenario.objects.filter(pk=scenario_id).first()
    if scenario is None:
        raise ValidationError({"scenario": "Choose a scenario from the training library."})
    with transaction.atomic():
        conversation, token = oversight.start_training_chat(
            user=user,
            agent_id=agent_id,
            department_id=department_id,
            opening_line=scenario.opening_line,
            visitor_name=f"Training: {scenario.title}"[:100],
        )
        mock = MockChat.objects.create(
            conversation=conversation,
            scenario=scenario,
            supervisor=user,
            agent=conversation.agent,
            created_at=timezone.now(),
        )
    return mock, token
