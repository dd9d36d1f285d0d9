"""HTTP side of chat attachments (chat/attachments.py): upload and download, for visitors and staff.

Visitors authenticate with their token (a form field; no cookies, so no CSRF) from the chat's own
pages or from an allowed embedding site (CORS answered to that origin only). Staff use their
session and the CSRF token. Answers are JSON: {"message": …} or {"error": {"code", "message"}}.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import attachments
from chat.attachments import AttachmentError
from chat.errors import ChatError, NotFound
from chat.models import Attachment, Message
from chat.origins import origin_allowed_for_visitor

# Multipart overhead allowed on top of the largest file before the body is refused unread.
_ENVELOPE_BYTES = 64 * 1024


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _too_big(request: HttpRequest) -> JsonResponse | None:
    limit = attachments.current_settings().max_bytes + _ENVELOPE_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return _error(
            "too_large",
            f"The file is too large; at most {attachments.human_size(limit - _ENVELOPE_BYTES)}.",
            413,
        )
    return None


def _answer(message: Message, *, visitor: bool) -> dict[str, Any]:
    part = attachments.visitor_frame_part(message.meta) if visitor else attachments.staff_frame_part(message.meta)
    return {
        "conversation_id": message.conversation_id,
        "seq": message.public_seq if visitor else message.seq,
        "client_id": message.client_id,
        "attachment": part,
    }


def _with_cors(response: HttpResponse, origin: str | None) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


@csrf_exempt
def visitor_upload(request: HttpRequest) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin and not origin_allowed_for_visitor(origin):
        return _error("origin_not_allowed", "Chat is not available on this site.", 403)
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST"
        response["Access-Control-Max-Age"] = "600"
        return _with_cors(response, origin)
    if request.method != "POST":
        return _with_cors(_error("method_not_allowed", "POST a file.", 405), origin)
    refused = _too_big(request)
    if refused is not None:
        return _with_cors(refused, origin)
    try:
        message = attachments.send_from_visitor(
            token=request.POST.get("token"),
            upload=request.FILES.get("file"),
            client_id=request.POST.get("client_id") or None,
        )
    except AttachmentError as exc:
        return _with_cors(_error(exc.code, exc.message, exc.status), origin)
    except ChatError as exc:
        return _with_cors(_error(exc.code, exc.message, 429 if exc.code == "rate_limited" else 400), origin)
    return _with_cors(JsonResponse({"message": _answer(message, visitor=True)}), origin)


@login_required
@require_POST
def staff_upload(request: HttpRequest) -> HttpResponse:
    refused = _too_big(request)
    if refused is not None:
        return refused
    try:
        conversation_id = int(request.POST.get("conversation_id", ""))
    except ValueError:
        return _error("invalid_field", "conversation_id must be an integer.", 400)
    try:
        message = attachments.send_from_staff(
            user=request.user,
            conversation_id=conversation_id,
            upload=request.FILES.get("file"),
            client_id=request.POST.get("client_id") or None,
            visibility=request.POST.get("visibility") or "public",
        )
    except AttachmentError as exc:
        return _error(exc.code, exc.message, exc.status)
    except NotFound as exc:
        return _error(exc.code, exc.message, 404)
    except ChatError as exc:
        return _error(exc.code, exc.message, 400)
    return JsonResponse({"message": _answer(message, visitor=False)})


def _file_response(attachment: Attachment) -> HttpResponse:
    try:
        handle = default_storage.open(attachment.file.name, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("The file is no longer stored.") from exc
    response = FileResponse(
        handle,
        content_type=attachment.content_type,
        as_attachment=not attachment.is_image,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Opened directly, a file can run nothing and load nothing.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    # The widget shows images on the customer's site, another origin.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_GET
def visitor_download(request: HttpRequest, attachment_id: int, signature: str) -> HttpResponse:
    try:
        attachment = attachments.for_visitor(attachment_id=attachment_id, signature=signature)
    except NotFound as exc:
        raise Http404("No such file.") from exc
    return _file_response(attachment)


@login_required
@require_GET
def staff_download(request: HttpRequest, attachment_id: int) -> HttpResponse:
    from compliance import audit

    try:
        attachment = attachments.for_staff(user=request.user, attachment_id=attachment_id)
    except NotFound as exc:
        raise Http404("No such file.") from exc
    audit.record(
        action="chat.attachment_viewed",
        actor=request.user,
        role=audit.role_of(request.user),
        source_ip=request.META.get("REMOTE_ADDR") or None,
        target=f"conversation:{attachment.conversation_id}",
        details={"attachment_id": attachment.pk, "name": attachment.name},
    )
    return _file_response(attachment)
