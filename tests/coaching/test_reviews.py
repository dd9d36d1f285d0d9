"""A review from queue to agent and back: annotate, score, share, acknowledge, reply."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from chat.models import Message
from coaching import selectors, services
from coaching.models import Criterion, Review, SamplingRule, Scorecard
from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.coaching.conftest import ended_chat

pytestmark = pytest.mark.django_db


@pytest.fixture
def review(agent, department, make_rule, supervisor):
    make_rule(mode=SamplingRule.Mode.ALL)
    chat = ended_chat(agent=agent, department=department, canned_id=99)
    Message.objects.create(
        conversation=chat,
        seq=2,
        role=Message.Role.AGENT,
        sender=agent.user,
        visibility="internal",
        body="Note: <b>VIP</b> customer",
        created_at=chat.ended_at,
    )
    [review] = services.sample_conversation(conversation_id=chat.pk)
    return review


@pytest.fixture
def scorecard():
    card = Scorecard.objects.create(name="Service basics")
    Criterion.objects.create(
        scorecard=card, label="Greeted by name", kind="yes_no", weight=1, position=1
    )
    Criterion.objects.create(
        scorecard=card, label="Solved the problem", kind="scale", weight=3, position=2
    )
    return card


def test_queue_shows_the_review_to_its_reviewer_with_the_transcript(review, supervisor):
    client = staff_client(supervisor)
    page = client.get(reverse("admin:coaching_review_changelist") + "?status__exact=pending")
    assert page.status_code == 200 and f"Conversation {review.conversation_id}" in page.text
    detail = client.get(reverse("admin:coaching_review_change", args=[review.pk]))
    text = detail.text
    assert "Hello, how can I help?" in text and "canned /greeting" in text
    assert "internal note" in text
    # Chat text is text, never HTML.
    assert "&lt;b&gt;VIP&lt;/b&gt;" in text and "<b>VIP</b>" not in text


def test_scorecard_gives_a_weighted_score(review, supervisor, scorecard):
    yes, solved = scorecard.criteria.all()
    client = staff_client(supervisor)
    url = reverse("coaching:scorecard", args=[review.pk])
    bad = client.post(url, {"scorecard_id": scorecard.pk, f"criterion_{yes.pk}": "1"})
    assert bad.status_code == 200 and "This field is required" in bad.text
    client.post(
        url,
        {"scorecard_id": scorecard.pk, f"criterion_{yes.pk}": "1", f"criterion_{solved.pk}": "4"},
    )
    review.refresh_from_db()
    # yes = 1 of 1 (weight 1), a 4 = 3 of 4 steps (weight 3): (1 + 2.25) / 4 = 81.25 %.
    assert review.score == Decimal("81.25") and review.status == Review.Status.IN_REVIEW
    rows = selectors.agent_scores_over_time(user=supervisor)
    assert [(r["agent"], r["reviews"], r["average_score"]) for r in rows] == [
        ("Alice Agent", 1, Decimal("81.25"))
    ]


def test_agent_sees_only_shared_reviews_of_its_own(review, agent, second_agent, supervisor):
    alice = staff_client(agent.user)
    url = reverse("coaching:review", args=[review.pk])
    assert alice.get(url).status_code == 404  # not shared yet
    chat = review.conversation
    for seq, to in ((3, agent.user), (4, second_agent.user)):
        Message.objects.create(
            conversation=chat,
            seq=seq,
            role=Message.Role.SUPERVISOR,
            sender=supervisor,
            visibility="whisper",
            whisper_to=to,
            body=f"Whisper to {to.username.title()}",
            created_at=chat.ended_at,
        )
    services.annotate(
        user=supervisor,
        review_id=review.pk,
        category="praise",
        comment="Warm greeting",
        message_id=review.conversation.messages.get(seq=1).pk,
        canned_fitted=True,
    )
    services.annotate(
        user=supervisor, review_id=review.pk, category="coaching", comment="Close with a summary"
    )
    services.share_review(user=supervisor, review_id=review.pk, summary="Good chat overall.")
    assert AuditEntry.objects.filter(
        action="coaching.review_shared", target=f"review:{review.pk}"
    ).exists()
    inbox = alice.get(reverse("coaching:inbox"))
    assert url in inbox.text
    page = alice.get(url)
    assert page.status_code == 200
    for text in (
        "Good chat overall.",
        "Warm greeting",
        "canned answer fitted",
        "Close with a summary",
    ):
        assert text in page.text
    assert "Whisper to Alice" in page.text and "Whisper to Bob" not in page.text
    bob = staff_client(second_agent.user)
    refused = bob.get(url)
    assert refused.status_code == 404
    assert "This review is not in your coaching inbox" in refused.text
    assert "Warm greeting" not in refused.text and "Good chat overall." not in refused.text
    # A review that does not exist gets the very same answer: nothing tells them apart.
    missing = bob.get(reverse("coaching:review", args=[review.pk + 1000]))
    assert missing.status_code == 404 and missing.text == refused.text
    assert url not in bob.get(reverse("coaching:inbox")).text


def test_acknowledge_and_reply_are_visible_to_the_supervisor(review, agent, supervisor):
    alice = staff_client(agent.user)
    assert "new</span>" not in alice.get(reverse("agent")).text
    services.share_review(user=supervisor, review_id=review.pk)
    # The workspace's link to the inbox says a review is waiting.
    workspace = alice.get(reverse("agent")).text
    assert 'Coaching inbox <span class="badge">1 new</span>' in workspace
    url = reverse("coaching:review", args=[review.pk])
    alice.post(url, {"reply": "Thanks, I will summarise at the end."})
    review.refresh_from_db()
    assert review.status == Review.Status.ACKNOWLEDGED
    page = staff_client(supervisor).get(reverse("admin:coaching_review_change", args=[review.pk]))
    assert "Thanks, I will summarise at the end." in page.text
    assert "Acknowledged by the agent" in page.text
    assert "new</span>" not in alice.get(reverse("agent")).text


def test_annotation_checks_what_it_is_about(review, supervisor, department, agent):
    from django.core.exceptions import ValidationError

    other = ended_chat(agent=agent, department=department)
    with pytest.raises(ValidationError, match="not part of this chat"):
        services.annotate(
            user=supervisor,
            review_id=review.pk,
            category="praise",
            comment="x",
            message_id=other.messages.get().pk,
        )
    with pytest.raises(ValidationError, match="Only a canned answer"):
        services.annotate(
            user=supervisor,
            review_id=review.pk,
            category="praise",
            comment="x",
            canned_fitted=False,
        )


def test_rule_form_refuses_impossible_values_with_clear_errors(supervisor):
    client = staff_client(supervisor)
    url = reverse("admin:coaching_samplingrule_add")
    base = {"name": "Bad", "enabled": "on", "reviewers": [supervisor.pk], "mode": "random"}
    cases = [
        ({"percent": "150"}, "A percentage is between 1 and 100."),
        ({}, "Random mode needs a percentage."),
        ({"mode": "low_score", "score": "7"}, "Survey ratings run from 1 to 5."),
        ({"mode": "low_score"}, "Score modes need a survey score (1 to 5)."),
        ({"percent": "10", "daily_cap": "0"}, "A daily cap of 0 would sample nothing"),
        ({"percent": "10", "reviewers": []}, "This field is required."),
    ]
    for extra, error in cases:
        response = client.post(url, {**base, **extra})
        assert response.status_code == 200, extra
        assert error in response.text, (extra, error)
    assert not SamplingRule.objects.exists()
    client.post(url, {**base, "percent": "10"})
    assert SamplingRule.objects.get().percent == 10


def test_only_supervisors_can_be_a_rules_reviewers(supervisor, agent, department_supervisor):
    """An agent chosen as reviewer would get reviews that no queue shows: not offered, refused."""
    client = staff_client(supervisor)
    url = reverse("admin:coaching_samplingrule_add")
    form = client.get(url)
    choices = form.context["adminform"].form.fields["reviewers"].queryset
    assert set(choices) == {supervisor, department_supervisor}
    refused = client.post(
        url, {"name": "To an agent", "enabled": "on", "mode": "all", "reviewers": [agent.user.pk]}
    )
    assert "Select a valid choice" in refused.text
    assert not SamplingRule.objects.exists()


def test_canned_insight_aggregates_uses_edits_and_scores(supervisor, agent, department):
    from chat.models import CannedResponse, SurveyResponse

    canned = CannedResponse.objects.create(title="Greeting", shortcut="greeting", body="Hi")
    a = ended_chat(agent=agent, department=department, canned_id=canned.pk, rating=5)
    b = ended_chat(agent=agent, department=department, canned_id=canned.pk, rating=2)
    Message.objects.filter(conversation=b).update(
        meta={"canned": {"id": canned.pk, "shortcut": "greeting", "edited": True}}
    )
    ended_chat(agent=agent, department=department, canned_id=canned.pk, is_training=True, rating=1)
    # Used twice in one chat: two uses, but that chat's score counts once.
    Message.objects.create(
        conversation=b,
        seq=2,
        public_seq=2,
        role=Message.Role.AGENT,
        sender=agent.user,
        body="Hi again",
        created_at=b.ended_at,
        meta={"canned": {"id": canned.pk, "shortcut": "greeting", "edited": True}},
    )
    assert SurveyResponse.objects.count() == 3 and a.pk
    [row] = selectors.canned_response_insight(user=supervisor)
    assert (
        row["canned_response"],
        row["uses"],
        row["edited_share"],
        row["average_survey_score"],
    ) == (canned, 3, 0.667, 3.5)
    page = staff_client(supervisor).get(reverse("coaching:canned_insight"))
    assert "/greeting" in page.text and "67 %" in page.text


def test_supervisor_annotates_in_the_admin(review, supervisor):
    greeting = review.conversation.messages.get(seq=1)
    url = reverse("admin:coaching_review_change", args=[review.pk])
    form = {
        "summary": "Friendly, but no closing.",
        "annotations-TOTAL_FORMS": "2",
        "annotations-INITIAL_FORMS": "0",
        "annotations-MIN_NUM_FORMS": "0",
        "annotations-MAX_NUM_FORMS": "1000",
        "annotations-0-message": str(greeting.pk),
        "annotations-0-category": "praise",
        "annotations-0-comment": "Good use of the greeting",
        "annotations-0-canned_fitted": "true",
        "annotations-1-category": "coaching",
        "annotations-1-comment": "Ask whether anything else is needed",
        "annotations-1-canned_fitted": "unknown",
    }
    response = staff_client(supervisor).post(url, form)
    assert response.status_code == 302, response.content[:2000]
    review.refresh_from_db()
    assert (
        review.summary == "Friendly, but no closing." and review.status == Review.Status.IN_REVIEW
    )
    got = sorted(
        review.annotations.values_list("message_id", "category", "canned_fitted", "comment"),
        key=lambda row: row[1],
    )
    assert got == [
        (None, "coaching", None, "Ask whether anything else is needed"),
        (greeting.pk, "praise", True, "Good use of the greeting"),
    ]


def test_the_annotation_form_offers_this_chats_lines_only(review, supervisor, agent, department):
    other = ended_chat(agent=agent, department=department)
    client = staff_client(supervisor)
    url = reverse("admin:coaching_review_change", args=[review.pk])
    page = client.get(url)
    field = page.context["inline_admin_formsets"][0].formset.forms[0].fields["message"]
    labels = [label for _, label in field.choices]
    greeting, note = review.conversation.messages.order_by("seq")
    assert labels == [
        "The whole chat",
        f"#{greeting.pk} agent [canned]: Hello, how can I help?",
        f"#{note.pk} agent (internal): Note: <b>VIP</b> customer",
    ]
    # A line of another chat is refused by the form (before the service would refuse it too).
    foreign = other.messages.get(seq=1)
    response = client.post(
        url,
        {
            "summary": "",
            "annotations-TOTAL_FORMS": "1",
            "annotations-INITIAL_FORMS": "0",
            "annotations-MIN_NUM_FORMS": "0",
            "annotations-MAX_NUM_FORMS": "1000",
            "annotations-0-message": str(foreign.pk),
            "annotations-0-category": "praise",
            "annotations-0-comment": "Not this chat",
            "annotations-0-canned_fitted": "unknown",
        },
    )
    assert response.status_code == 200 and "Select a valid choice" in response.text
    assert not review.annotations.exists()
