"""Coaching: sampling rules fill reviewers' queues; reviews annotate and score a chat and are
shared with the agent; a training library of scenarios for mock chats.

A Review is the queue entry and the review at once: one per (rule, conversation), so a
conversation enters a queue once per rule however often the rule is evaluated.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from chat.models import AgentProfile, CannedResponse, Conversation, Department, Message


class SamplingRule(models.Model):
    class Mode(models.TextChoices):
        ALL = "all", "All chats"
        RANDOM = "random", "Random share (percent)"
        LOW_SCORE = "low_score", "Survey score at most"
        HIGH_SCORE = "high_score", "Survey score at least"

    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    departments = models.ManyToManyField(
        Department, blank=True, related_name="+", help_text="None selected: every department."
    )
    agents = models.ManyToManyField(
        AgentProfile, blank=True, related_name="+", help_text="None selected: every agent."
    )
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.ALL)
    percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Random mode: 1 to 100. The same chat always gets the same answer.",
    )
    score = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Score modes: a survey rating, 1 to 5."
    )
    percent_of_rest = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Score modes: also sample this percent (1 to 100) of the chats the score does not match.",
    )
    only_transferred = models.BooleanField(
        default=False, help_text="Only chats that were transferred."
    )
    min_wait_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Only chats whose visitor waited longer than this before an agent accepted.",
    )
    canned_response = models.ForeignKey(
        CannedResponse,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Only chats in which this canned response was used.",
    )
    daily_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many chats a day enter the queues from this rule.",
    )
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="coaching_rules")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__isnull=True) | Q(percent__gte=1, percent__lte=100),
                name="rule_percent_1_100",
            ),
            models.CheckConstraint(
                condition=Q(percent_of_rest__isnull=True)
                | Q(percent_of_rest__gte=1, percent_of_rest__lte=100),
                name="rule_percent_of_rest_1_100",
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=1, score__lte=5),
                name="rule_score_1_5",
            ),
            models.CheckConstraint(
                condition=Q(daily_cap__isnull=True) | Q(daily_cap__gte=1),
                name="rule_daily_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.percent is not None and not 1 <= self.percent <= 100:
            errors["percent"] = "A percentage is between 1 and 100."
        if self.percent_of_rest is not None and not 1 <= self.percent_of_rest <= 100:
            errors["percent_of_rest"] = "A percentage is between 1 and 100."
        if self.score is not None and not 1 <= self.score <= 5:
            errors["score"] = "Survey ratings run from 1 to 5."
        if self.daily_cap is not None and self.daily_cap < 1:
            errors["daily_cap"] = (
                "A daily cap of 0 would sample nothing; leave it empty for no cap."
            )
        if self.mode == self.Mode.RANDOM:
            if self.percent is None and "percent" not in errors:
                errors["percent"] = "Random mode needs a percentage."
            if self.score is not None:
                errors["score"] = "A score applies only to the score modes."
            if self.percent_of_rest is not None:
                errors["percent_of_rest"] = "Only the score modes sample a share of the rest."
        elif self.mode in (self.Mode.LOW_SCORE, self.Mode.HIGH_SCORE):
            if self.score is None and "score" not in errors:
                errors["score"] = "Score modes need a survey score (1 to 5)."
            if self.percent is not None:
                errors["percent"] = "Percent applies to random mode; use 'percent of rest' here."
        else:
            for name in ("percent", "score", "percent_of_rest"):
                if getattr(self, name) is not None:
                    errors[name] = "'All chats' samples every chat; leave this empty."
        if errors:
            raise ValidationError(errors)


class Scorecard(models.Model):
    """A QA rubric: weighted criteria; a review fills one in and gets a score out of 100."""

    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Criterion(models.Model):
    class Kind(models.TextChoices):
        YES_NO = "yes_no", "Yes / no"
        SCALE = "scale", "1 to 5"

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="criteria")
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.YES_NO)
    weight = models.PositiveSmallIntegerField(default=1)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["scorecard", "position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=1), name="criterion_weight_positive")
        ]

    def __str__(self) -> str:
        return self.label


class Review(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_REVIEW = "in_review", "In review"
        SHARED = "shared", "Shared with the agent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged by the agent"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(
        SamplingRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coaching_reviews"
    )
    # The agent the review is about: the one who held the chat at its end.
    agent = models.ForeignKey(
        AgentProfile, on_delete=models.PROTECT, related_name="coaching_reviews"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    # Opened by a supervisor (a mock chat), not by a sampling rule. Not "rule is null": deleting
    # a rule nulls its reviews' rule, and those must not collide with the constraint below.
    by_hand = models.BooleanField(
        default=False, verbose_name="opened by hand (a mock chat)"
    )
    summary = models.TextField(blank=True, help_text="The reviewer's comment on the whole chat.")
    scorecard = models.ForeignKey(
        Scorecard, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    agent_reply = models.TextField(blank=True)
    created_at = models.DateTimeField()
    shared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["reviewer", "status"]),
            models.Index(fields=["agent", "status"]),
        ]
        constraints = [
            # Re-evaluating a rule (chat end, then a late survey) never queues a chat twice.
            models.UniqueConstraint(fields=["rule", "conversation"], name="review_once_per_rule"),
            # A review opened by hand (a mock chat): one per supervisor and chat.
            models.UniqueConstraint(
                fields=["reviewer", "conversation"],
                condition=Q(by_hand=True),
                name="manual_review_once_per_reviewer",
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=Decimal(0), score__lte=Decimal(100)),
                name="review_score_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of conversation {self.conversation_id}"


class Annotation(models.Model):
    class Category(models.TextChoices):
        PRAISE = "praise", "Praise"
        COACHING = "coaching", "Coaching"
        COMPLIANCE = "compliance", "Compliance"

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="annotations")
    # None: about the whole chat.
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    category = models.CharField(max_length=12, choices=Category.choices)
    comment = models.TextField()
    # Only for a canned answer: did it fit the situation?
    canned_fitted = models.BooleanField(null=True, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["review", "created_at", "pk"]


class Answer(models.Model):
    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="answers")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="+")
    # Yes/no: 1 or 0; scale: 1 to 5.
    value = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["review", "criterion"], name="answer_once_per_criterion"
            ),
            models.CheckConstraint(condition=Q(value__lte=5), name="answer_value_at_most_5"),
        ]


class Scenario(models.Model):
    """An entry of the training library a supervisor plays as the visitor in a mock chat."""

    title = models.CharField(max_length=150, unique=True)
    opening_line = models.TextField(help_text="The visitor's first message.")
    persona = models.TextField(help_text="Who the visitor is and how they behave.")
    supervisor_notes = models.TextField(blank=True, help_text="Only the supervisor sees these.")

    def __str__(self) -> str:
        return self.title


class MockChat(models.Model):
    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="+")
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="mock_chats")
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    agent = models.ForeignKey(
        AgentProfile, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
