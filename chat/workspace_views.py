"""Agent workspace pages besides the live one: transcripts, own canned responses, profile."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chat import profile_services
from chat.canned import usable_by
from chat.errors import NotFound
from chat.forms import AvatarForm, OwnCannedResponseForm
from chat.models import AgentProfile, CannedResponse
from chat.pipeline import display_names
from chat.selectors import get_agent_profile
from chat.visitor_panel import get_transcript_for


def _agent_or_404(request: HttpRequest) -> AgentProfile:
    profile = get_agent_profile(user=request.user)
    if profile is None:
        raise Http404("Not an agent.")
    return profile


@login_required
def transcript(request: HttpRequest, conversation_id: int) -> HttpResponse:
    try:
        conversation, messages = get_transcript_for(
            user=request.user, conversation_id=conversation_id
        )
    except NotFound as exc:
        raise Http404("No such transcript.") from exc
    from compliance.admin_audit import record_transcript_view

    record_transcript_view(request=request, conversation_id=conversation.pk, where="workspace")
    names = display_names([m.sender_id for m in messages if m.sender_id])
    rows = [(m, names.get(m.sender_id) if m.sender_id else None) for m in messages]
    return render(request, "chat/transcript.html", {"conversation": conversation, "rows": rows})


@login_required
def canned_list(request: HttpRequest) -> HttpResponse:
    profile = _agent_or_404(request)
    form = OwnCannedResponseForm(owner=profile)
    return _canned_page(request, profile, form)


def _canned_page(
    request: HttpRequest,
    profile: AgentProfile,
    form: OwnCannedResponseForm,
    editing: CannedResponse | None = None,
) -> HttpResponse:
    responses = usable_by(agent=profile).select_related("owner")
    return render(
        request,
        "chat/canned.html",
        {"responses": responses, "form": form, "editing": editing, "profile": profile},
    )


def _own(profile: AgentProfile, pk: int) -> CannedResponse:
    response = CannedResponse.objects.filter(pk=pk, owner=profile).first()
    if response is None:
        raise Http404("Not one of your canned responses.")
    return response


@login_required
def canned_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    profile = _agent_or_404(request)
    instance = _own(profile, pk) if pk is not None else None
    if request.method == "POST":
        form = OwnCannedResponseForm(request.POST, owner=profile, instance=instance)
        if form.is_valid():
            form.save()
            return redirect("agent_canned")
    else:
        form = OwnCannedResponseForm(owner=profile, instance=instance)
    return _canned_page(request, profile, form, editing=instance)


@login_required
@require_POST
def canned_delete(request: HttpRequest, pk: int) -> HttpResponse:
    profile = _agent_or_404(request)
    _own(profile, pk).delete()
    return redirect("agent_canned")


@login_required
def profile_page(request: HttpRequest) -> HttpResponse:
    profile = _agent_or_404(request)
    if request.method == "POST":
        form = AvatarForm(request.POST, request.FILES)
        if form.is_valid():
            profile_services.set_avatar(
                agent=profile, image=form.cleaned_data["image"], actor=request.user
            )
            return redirect("agent_profile")
    else:
        form = AvatarForm()
    return render(request, "chat/profile.html", {"profile": profile, "form": form})


@login_required
@require_POST
def avatar_remove(request: HttpRequest) -> HttpResponse:
    profile = _agent_or_404(request)
    profile_services.remove_avatar(agent=profile, actor=request.user)
    return redirect("agent_profile")


def avatar_file(request: HttpRequest, name: str) -> HttpResponse:
    """Agents' avatars from the default file storage: public, shown to visitors with the name.

    Only files under avatars/ are served, and only as the PNGs profile_services wrote.
    """
    from django.core.files.storage import default_storage
    from django.http import FileResponse

    path = f"avatars/{name}"
    if "/" in name or not name.endswith(".png") or not default_storage.exists(path):
        raise Http404("No such avatar.")
    response = FileResponse(default_storage.open(path, "rb"), content_type="image/png")
    response["Cache-Control"] = "public, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
