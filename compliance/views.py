from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render

from compliance import audit, audit_export
from compliance.models import AuditEntry


def _client_ip(request: HttpRequest) -> str | None:
    # The peer address; the trusted-proxy rule for X-Forwarded-For belongs to the IP restrictions.
    return request.META.get("REMOTE_ADDR") or None


@login_required
def audit_export_view(request: HttpRequest) -> HttpResponse:
    """The filter form, and with `format` in the query the export itself (CSV or JSON Lines)."""
    who = {
        "actor": request.user,
        "role": audit.role_of(request.user),
        "source_ip": _client_ip(request),
    }
    if not audit_export.can_read_audit_log(request.user):
        audit.record(
            action="audit.export", target="audit_log", outcome=AuditEntry.Outcome.DENIED, **who
        )
        raise PermissionDenied("Only compliance officers may export the audit log.")
    if "format" not in request.GET:
        return render(request, "compliance/audit_export.html", {"form": audit_export.ExportForm()})

    form = audit_export.ExportForm(request.GET)
    if not form.is_valid():
        # Cut: a message may quote what was typed ("Unknown format ..."), which could be long.
        errors = {name: [str(m)[:200] for m in messages] for name, messages in form.errors.items()}
        audit.record(
            action="audit.export",
            target="audit_log",
            outcome=AuditEntry.Outcome.FAILURE,
            details={"errors": errors},
            **who,
        )
        return render(request, "compliance/audit_export.html", {"form": form}, status=400)

    filters = form.filters()
    entry = audit.record(
        action="audit.export", target="audit_log", details=filters.as_details(), **who
    )
    rows = audit_export.entries_for_export(user=request.user, filters=filters, before_id=entry.pk)
    if isinstance(request, ASGIRequest):
        content = audit_export.astream(rows, fmt=filters.format)
    else:
        content = audit_export.stream(rows, fmt=filters.format)
    response = StreamingHttpResponse(content, content_type=audit_export.FORMATS[filters.format])
    response["Content-Disposition"] = (
        f'attachment; filename="{audit_export.filename(filters.format)}"'
    )
    response["Cache-Control"] = "no-store"
    return response


# --- Archived transcripts -------------------------------------------------------------------


@login_required
def transcript_view(request: HttpRequest, number: int) -> HttpResponse:
    """One transcript, from the database or (conduit mode, purged) from storage; audited."""
    from compliance import archive

    who = {"actor": request.user, "role": audit.role_of(request.user), "source_ip": _client_ip(request)}
    record = archive.get_archive_for(user=request.user, conversation_number=number)
    if record is None:
        audit.record(
            action="transcript.view", target=f"conversation:{number}",
            outcome=AuditEntry.Outcome.DENIED, **who,
        )
        raise Http404("No transcript you may see.")
    try:
        transcript = archive.read_transcript(archive=record)
    except archive.TranscriptUnavailable as exc:
        audit.record(
            action="transcript.view", target=f"conversation:{number}",
            outcome=AuditEntry.Outcome.FAILURE, details={"error": str(exc)[:500]}, **who,
        )
        return render(
            request, "compliance/transcript.html",
            {"archive": record, "error": f"The transcript cannot be shown: {exc}"}, status=503,
        )
    audit.record(
        action="transcript.view", target=f"conversation:{number}",
        details={"source": transcript.source}, **who,
    )
    response = render(request, "compliance/transcript.html", {"archive": record, "transcript": transcript})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def transcript_download(request: HttpRequest, number: int) -> HttpResponse:
    """The archived JSON: an expiring link (S3, Azure) or streamed by the app (local files)."""
    from compliance import archive

    who = {"actor": request.user, "role": audit.role_of(request.user), "source_ip": _client_ip(request)}
    record = archive.get_archive_for(user=request.user, conversation_number=number)
    if record is None or record.state != record.State.CONFIRMED:
        audit.record(
            action="transcript.download", target=f"conversation:{number}",
            outcome=AuditEntry.Outcome.DENIED if record is None else AuditEntry.Outcome.FAILURE,
            **who,
        )
        raise Http404("No archived transcript you may see.")
    link = archive.archive_link(archive=record)
    audit.record(
        action="transcript.download", target=f"conversation:{number}",
        details={"location": record.location, "link": bool(link)}, **who,
    )
    if link:
        response: HttpResponse = HttpResponseRedirect(link)
    else:
        try:
            body = archive.read_archived_json(archive=record)
        except archive.TranscriptUnavailable as exc:
            return HttpResponse(f"The transcript cannot be read: {exc}", status=503, content_type="text/plain")
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="transcript-{number}.json"'
    response["Cache-Control"] = "no-store"
    return response
