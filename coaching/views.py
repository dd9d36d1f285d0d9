"""Coaching pages: the agent's inbox, the supervisor's scorecard, insight, mock chats, live view."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chat.errors import ChatError
from coaching import access, selectors, services
from coaching.forms import MockChatForm, ReplyForm, ScorecardForm
from coaching.models import Scorecard


def _require_supervisor(request: HttpRequest) -> None:
    if not access.is_supervisor(request.user):
        raise PermissionDenied("This page is for supervisors.")


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    reviews = selectors.reviews_for_agent(user=request.user)
    return render(request, "coaching/inbox.html", {"reviews": reviews})


@login_required
def review_detail(request: HttpRequest, review_id: int) -> HttpResponse:
    try:
        review = selectors.get_review_for_agent(user=request.user, review_id=review_id)
    except Http404:
        # Another agent's review, one not shared yet, or none at all: the same answer for each.
        return render(request, "coaching/review_not_yours.html", status=404)
    form = ReplyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.acknowledge_review(
                user=request.user, review_id=review.pk, reply=form.cleaned_data["reply"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, "Thank you: your supervisor can see that you read this review."
            )
            return redirect("coaching:review", review_id=review.pk)
    return render(
        request,
        "coaching/review.html",
        {
            "review": review,
            "lines": selectors.transcript(review=review, agent_user=request.user),
            "chat_annotations": [a for a in review.annotations.all() if a.message_id is None],
            "answers": review.answers.select_related("criterion").order_by(
                "criterion__position", "criterion__pk"
            ),
            "form": form,
        },
    )


@login_required
def scorecard(request: HttpRequest, review_id: int) -> HttpResponse:
    _require_supervisor(request)
    review = selectors.get_review_for_supervisor(user=request.user, review_id=review_id)
    cards = Scorecard.objects.filter(active=True).order_by("name")
    chosen = cards.filter(
        pk=request.GET.get("scorecard") or request.POST.get("scorecard_id") or 0
    ).first()
    chosen = chosen or review.scorecard or cards.first()
    if chosen is None:
        return render(
            request, "coaching/scorecard.html", {"review": review, "cards": cards, "form": None}
        )
    form = ScorecardForm(request.POST or None, scorecard=chosen)
    if request.method == "POST" and form.is_valid():
        try:
            services.fill_scorecard(
                user=request.user, review_id=review.pk, scorecard_id=chosen.pk, values=form.values()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Scorecard saved.")
            return redirect("admin:coaching_review_change", review.pk)
    return render(
        request,
        "coaching/scorecard.html",
        {"review": review, "cards": cards, "chosen": chosen, "form": form},
    )


@login_required
def canned_insight(request: HttpRequest) -> HttpResponse:
    _require_supervisor(request)
    return render(
        request,
        "coaching/canned_insight.html",
        {"rows": selectors.canned_response_insight(user=request.user)},
    )


@login_required
def mock_chat(request: HttpRequest) -> HttpResponse:
    _require_supervisor(request)
    form = MockChatForm(request.POST or None, initial={"scenario": request.GET.get("scenario")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            mock, token = services.start_mock_chat(
                user=request.user,
                scenario_id=data["scenario"].pk,
                agent_id=data["agent"].pk if data.get("agent") else None,
                department_id=data["department"].pk if data.get("department") else None,
            )
        except (ChatError, ValidationError) as exc:
            form.add_error(None, getattr(exc, "message", None) or "; ".join(exc.messages))
        else:
            # The token is shown once, in this response: the supervisor's window becomes the visitor.
            return render(request, "coaching/mock_play.html", {"mock": mock, "token": token})
    return render(
        request,
        "coaching/mock_start.html",
        {"form": form, "recent": selectors.recent_mock_chats(user=request.user)},
    )


@login_required
@require_POST
def review_mock(request: HttpRequest, mock_id: int) -> HttpResponse:
    """Open the supervisor's review of a mock chat it played, in the back office's review page."""
    _require_supervisor(request)
    try:
        review = services.review_mock_chat(user=request.user, mock_id=mock_id)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("coaching:mock_chat")
    return redirect("admin:coaching_review_change", review.pk)


@login_required
def live(request: HttpRequest) -> HttpResponse:
    _require_supervisor(request)
    return render(request, "coaching/live.html")
