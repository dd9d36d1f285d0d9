"""HTTP side of the widget and of tickets: the public configuration, the demo host page, and the
staff ticket pages. Views are thin: they read the request, call a selector or service, render."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from chat import readback, tickets, widget
from chat.errors import ChatError, NotFound
from chat.models import AgentProfile, Department, Ticket
from chat.origins import origin_allowed_for_visitor
from chat.selectors import get_agent_profile

REFUSED = "Chat is not available on this site. The site owner has to allow it in Coachline."


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@require_GET
def widget_config(request: HttpRequest) -> JsonResponse:
    """Read by widget.js on the host page before it draws anything.

    Answered to any origin (CORS `*`: nothing in it is private) so that a refused site gets a
    clear message to show instead of a silent socket failure; the socket handshake itself is
    what enforces the allowed origins.
    """
    origin = request.headers.get("Origin")
    # Same-site requests (the demo page on this server) send no Origin on GET.
    allowed = origin_allowed_for_visitor(origin) if origin else True
    body = {"allowed": allowed, "message": "" if allowed else REFUSED}
    if allowed:
        body.update(widget.widget_config())
    response = JsonResponse(body)
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-store"
    return response


def widget_demo(request: HttpRequest) -> HttpResponse:
    """A host page that embeds the widget from the *other* local origin (localhost ↔ 127.0.0.1)."""
    host = request.get_host()
    hostname, _, port = host.partition(":")
    other = "127.0.0.1" if hostname == "localhost" else "localhost"
    widget_origin = f"{request.scheme}://{other}{':' + port if port else ''}"
    response = render(request, "chat/widget_demo.html", {"widget_origin": widget_origin, "host": host})
    # This page plays a customer's site: it loads widget.js and widget.css from the chat server's
    # (other) origin and the widget opens its socket there. The site-wide CSP allows only 'self'.
    socket_origin = ("wss://" if request.is_secure() else "ws://") + widget_origin.split("://", 1)[1]
    response._csp_update = {
        "script-src": [widget_origin],
        "style-src": [widget_origin],
        "img-src": [widget_origin],
        "connect-src": [widget_origin, socket_origin],
    }
    return response


# --- tickets (staff) ------------------------------------------------------------------------


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_superuser or get_agent_profile(user=request.user))


@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    if not _staff(request):
        return render(request, "chat/not_an_agent.html", status=403)
    params = {k: request.GET.get(k, "") for k in ("status", "assignee", "department")}
    own = get_agent_profile(user=request.user)
    if params["assignee"] == "me":
        params["assignee"] = str(own.pk) if own else "none"
    export = request.GET.get("format") == "csv"
    rows = readback.tickets(
        tickets.list_tickets(user=request.user, source_ip=_client_ip(request), export=export, **params)
    )
    if export:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="tickets.csv"'
        writer = csv.writer(response)
        writer.writerow(
            ["id", "subject", "status", "source", "department", "assignee", "email", "updated_at"]
        )
        for t in rows:
            writer.writerow(
                [
                    t.pk,
                    t.subject,
                    t.status,
                    t.source,
                    t.department or "",
                    t.assignee or "",
                    t.email,
                    t.updated_at.isoformat(),
                ]
            )
        return response
    profile = own
    departments = (
        Department.objects.all() if request.user.is_superuser else profile.departments.all()
    )  # type: ignore[union-attr]
    return render(
        request,
        "chat/tickets.html",
        {
            "tickets": rows,
            "filters": params,
            "statuses": Ticket.Status.choices,
            "departments": departments,
            "agents": AgentProfile.objects.filter(departments__in=departments).distinct(),
            "own": own,
        },
    )


# A reply is masked before it is stored; an error report of a failed request must not carry it raw.
@sensitive_post_parameters("body")
@login_required
def ticket_detail(request: HttpRequest, ticket_id: int) -> HttpResponse:
    if not _staff(request):
        return render(request, "chat/not_an_agent.html", status=403)
    error = ""
    try:
        if request.method == "POST":
            if "assignee" in request.POST:
                tickets.assign_ticket(
                    user=request.user,
                    ticket_id=ticket_id,
                    assignee=request.POST["assignee"],
                    source_ip=_client_ip(request),
                )
            elif "status" in request.POST:
                tickets.change_ticket_status(
                    user=request.user,
                    ticket_id=ticket_id,
                    status=request.POST["status"],
                    source_ip=_client_ip(request),
                )
            else:
                tickets.reply_to_ticket(
                    user=request.user,
                    ticket_id=ticket_id,
                    body=request.POST.get("body", ""),
                    source_ip=_client_ip(request),
                )
            return redirect("ticket_detail", ticket_id=ticket_id)
        ticket = tickets.get_ticket_for(
            user=request.user, ticket_id=ticket_id, source_ip=_client_ip(request), audit_view=True
        )
    except NotFound as exc:
        raise Http404("No such ticket.") from exc
    except ChatError as exc:
        # Keep what was typed: the form is shown again with the text and the reason.
        error = exc.message
        try:
            ticket = tickets.get_ticket_for(user=request.user, ticket_id=ticket_id)
        except NotFound as missing:  # bad input for a ticket that is not there (or not yours)
            raise Http404("No such ticket.") from missing
    own = get_agent_profile(user=request.user)
    return render(
        request,
        "chat/ticket_detail.html",
        {
            "ticket": readback.ticket(ticket),
            "thread": readback.messages(
                ticket.messages.select_related("author"), department_id=ticket.department_id
            ),
            "transcript": readback.messages(
                tickets.linked_transcript(ticket=ticket),
                department_id=ticket.conversation.department_id if ticket.conversation else None,
            ),
            "own": own,
            "agents": tickets.assignable_agents(ticket=ticket),
            "may_reassign": ticket.assignee is None
            or (own is not None and ticket.assignee_id == own.pk)
            or tickets.may_reassign_any(user=request.user, ticket=ticket),
            "statuses": Ticket.Status.choices,
            "error": error,
            "draft": request.POST.get("body", "") if error else "",
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
def ticket_from_chat(request: HttpRequest) -> JsonResponse:
    """Called by static/chat/tickets.js from the workspace (CSRF token in the header)."""
    try:
        conversation_id = int(request.POST.get("conversation_id", ""))
    except ValueError:
        return JsonResponse({"error": "conversation_id must be an integer."}, status=400)
    try:
        ticket = tickets.create_ticket_from_chat(
            user=request.user, conversation_id=conversation_id, source_ip=_client_ip(request)
        )
    except NotFound:
        return JsonResponse({"error": "No such conversation."}, status=404)
    except ChatError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"ticket_id": ticket.pk, "url": f"/tickets/{ticket.pk}/"})
