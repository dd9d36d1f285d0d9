"""Reads of coaching with the access check built in: reviewers see their queue, agents their own
shared reviews; "not yours" and "does not exist" look the same (404)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404

from chat import readback
from chat.models import CannedResponse, Message
from coaching import access
from coaching.models import MockChat, Review

AGENT_VISIBLE = (Review.Status.SHARED, Review.Status.ACKNOWLEDGED)


def reviews_for_supervisor(*, user: Any) -> QuerySet[Review]:
    """The supervisor's queue: reviews assigned to it, within the departments it oversees now
    (a supervisor moved off a department no longer reads its transcripts). Superusers: all."""
    if not access.is_supervisor(user):
        return Review.objects.none()
    qs = Review.objects.select_related(
        "conversation__department", "agent", "rule", "reviewer", "scorecard"
    )
    if not user.is_superuser:
        qs = qs.filter(reviewer=user)
    ids = access.supervised_department_ids(user)
    if ids is not None:
        qs = qs.filter(conversation__department_id__in=ids)
    return qs


def get_review_for_supervisor(*, user: Any, review_id: Any) -> Review:
    review = (
        reviews_for_supervisor(user=user).filter(pk=review_id).first()
        if isinstance(review_id, int)
        else None
    )
    if review is None:
        raise Http404("No such review in your queue.")
    return review


def reviews_for_agent(*, user: Any) -> QuerySet[Review]:
    """An agent's coaching inbox: only its own reviews, and only once shared."""
    return (
        Review.objects.filter(agent__user=user, status__in=AGENT_VISIBLE)
        .select_related("conversation__department", "reviewer", "scorecard")
        .order_by("-shared_at", "-pk")
    )


def new_reviews_count(*, user: Any) -> int:
    """Reviews shared with the agent that it has not acknowledged yet."""
    return Review.objects.filter(agent__user=user, status=Review.Status.SHARED).count()


def get_review_for_agent(*, user: Any, review_id: Any) -> Review:
    review = (
        reviews_for_agent(user=user).filter(pk=review_id).first()
        if isinstance(review_id, int)
        else None
    )
    if review is None:
        raise Http404("No such review in your coaching inbox.")
    return review


def transcript(*, review: Review, agent_user: Any = None) -> list[dict[str, Any]]:
    """The reviewed chat as lines: who said what and when, with what only staff could see marked,
    canned answers marked, and the review's annotations under the line they are about."""
    from chat.pipeline import display_names

    messages = Message.objects.filter(conversation_id=review.conversation_id).order_by("seq")
    if agent_user is not None:
        # The agent's inbox: whispers to someone else (a colleague before a transfer) stay hidden.
        messages = messages.exclude(
            Q(visibility=Message.Visibility.WHISPER)
            & ~Q(whisper_to=agent_user)
            & ~Q(sender=agent_user)
        )
    # Read back from storage: the archive masking rules apply (chat.readback).
    department_id = review.conversation.department_id
    messages = readback.messages(messages, department_id=department_id)
    visitor_name = readback.text(review.conversation.visitor.name, department_id=department_id)
    names = display_names([m.sender_id for m in messages if m.sender_id])
    notes: dict[int | None, list[Any]] = {}
    for a in review.annotations.all():
        notes.setdefault(a.message_id, []).append(a)
    lines = []
    for m in messages:
        if m.role == Message.Role.VISITOR:
            who = visitor_name or "Visitor"
        elif m.role == Message.Role.SYSTEM:
            who = "System"
        else:
            who = names.get(m.sender_id, m.role.title())
        lines.append(
            {
                "message": m,
                "who": who,
                "canned": (m.meta or {}).get("canned"),
                "annotations": notes.get(m.pk, []),
            }
        )
    return lines


def agent_scores_over_time(
    *,
    user: Any,
    agent_ids: list[int] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[dict[str, Any]]:
    """Average scorecard score per agent and day (the day the review was shared or made).

    For reporting: [{"agent_id", "agent", "day", "reviews", "average_score"}], ordered by agent, day.
    """
    ids = access.supervised_department_ids(user)
    if ids is not None and not ids:
        return []
    qs = scored_reviews()
    if ids is not None:
        qs = qs.filter(conversation__department_id__in=ids)
    if agent_ids is not None:
        qs = qs.filter(agent_id__in=agent_ids)
    qs = qs.annotate(day=TruncDate("created_at"))
    if start is not None:
        qs = qs.filter(day__gte=start)
    if end is not None:
        qs = qs.filter(day__lte=end)
    rows = (
        qs.values("agent_id", "agent__display_name", "day")
        .annotate(reviews=Count("pk"), average_score=Avg("score"))
        .order_by("agent__display_name", "agent_id", "day")
    )
    return [
        {
            "agent_id": r["agent_id"],
            "agent": r["agent__display_name"],
            "day": r["day"],
            "reviews": r["reviews"],
            "average_score": Decimal(r["average_score"]).quantize(Decimal("0.01")),
        }
        for r in rows
    ]


def scored_reviews() -> QuerySet[Review]:
    """Every QA evaluation that counts in metrics: reviews with a scorecard score (0 to 100), mock
    (training) chats left out. No access check: this is reporting's source of per-agent QA scores,
    which scopes its own figures.

    Each row is one evaluation; useful fields: `agent_id`, `score`, `created_at` (when the chat
    entered the queue), `conversation__department_id`, `conversation__ended_at`. A chat reviewed
    under two rules counts twice, as two evaluations. For example, per agent and day of the chat:
    `scored_reviews().annotate(day=TruncDate("conversation__ended_at", tzinfo=tz))
    .values("day", "conversation__department_id", "agent_id")
    .annotate(qa_count=Count("pk"), qa_score_sum=Sum("score"))`.
    """
    return Review.objects.filter(score__isnull=False, conversation__is_training=False)


def mock_chats_for_supervisor(*, user: Any) -> QuerySet[MockChat]:
    """The mock chats a supervisor may review: those it played (administrators: every one)."""
    if not access.is_supervisor(user):
        return MockChat.objects.none()
    qs = MockChat.objects.select_related("conversation", "scenario", "agent", "supervisor")
    if access.supervised_department_ids(user) is not None:
        qs = qs.filter(supervisor=user)
    return qs.order_by("-created_at", "-pk")


def recent_mock_chats(*, user: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The supervisor's latest mock chats, each with its status and its review by this user."""
    mocks = list(mock_chats_for_supervisor(user=user)[:limit])
    reviews = dict(
        Review.objects.filter(
            by_hand=True, reviewer=user, conversation_id__in=[m.conversation_id for m in mocks]
        ).values_list("conversation_id", "pk")
    )
    return [
        {
            "mock": m,
            "ended": m.conversation.status == m.conversation.Status.ENDED,
            "review_id": reviews.get(m.conversation_id),
        }
        for m in mocks
    ]


def canned_response_insight(*, user: Any) -> list[dict[str, Any]]:
    """Per canned response: uses, share of uses edited, average survey score of chats it was in.

    Two queries over Message.meta["canned"], whatever the number of canned responses; training
    chats do not count.
    """
    if not access.is_supervisor(user):
        return []
    ids = access.supervised_department_ids(user)
    uses = Message.objects.filter(meta__canned__id__isnull=False, conversation__is_training=False)
    if ids is not None:
        uses = uses.filter(conversation__department_id__in=ids)
    per_canned = {
        r["meta__canned__id"]: r
        for r in uses.values("meta__canned__id").annotate(
            uses=Count("pk"),
            edited=Count("pk", filter=Q(meta__canned__edited=True)),
            chats=Count("conversation", distinct=True),
        )
    }
    # One row per (canned response, chat): a chat that used an answer twice counts once.
    ratings: dict[Any, list[int]] = {}
    for canned_id, _conversation_id, rating in (
        uses.filter(conversation__survey__isnull=False)
        .values_list("meta__canned__id", "conversation_id", "conversation__survey__rating")
        .order_by()
        .distinct()
    ):
        ratings.setdefault(canned_id, []).append(rating)
    rows = []
    for canned in CannedResponse.objects.filter(
        pk__in=[k for k in per_canned if isinstance(k, int)]
    ):
        r = per_canned[canned.pk]
        scores = ratings.get(canned.pk, [])
        rows.append(
            {
                "canned_response": canned,
                "uses": r["uses"],
                "edited_share": round(r["edited"] / r["uses"], 3) if r["uses"] else 0.0,
                "average_survey_score": round(sum(scores) / len(scores), 2) if scores else None,
            }
        )
    rows.sort(key=lambda row: (-row["uses"], row["canned_response"].shortcut))
    return rows
