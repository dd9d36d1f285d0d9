from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from chat import health
from chat.models import AgentProfile, Department
from chat.selectors import get_agent_profile


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/home.html")


def visitor_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/visitor.html", {"departments": Department.objects.all()})


@login_required
def agent_page(request: HttpRequest) -> HttpResponse:
    profile = get_agent_profile(user=request.user)
    if profile is None:
        return render(request, "chat/not_an_agent.html", status=403)
    return render(
        request, "chat/agent.html", {"profile": profile, "presence_choices": AgentProfile.Presence.choices}
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Restart it when this fails."""
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database, channel layer, Redis and Celery's broker answer, 503
    naming what failed otherwise. Take the process out of rotation while this fails."""
    result = await health.readiness()
    return JsonResponse(result, status=200 if result["ready"] else 503)
