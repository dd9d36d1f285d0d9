"""Files sent in a chat, both ways: checked against the back office's allowlist, scanned by ClamAV
when one is configured, stored through the project's file storage, served only to the people
of that chat.

A file travels over HTTP (a socket frame is at most 64 KB): the widget and the workspace upload
it, and the message that carries it ("[Attachment: name]") goes through the message pipeline like
any other, so it has its sequence number, is deduplicated by `client_id`, masked, archived and
broadcast as usual. Frames describe the file in `attachment` (docs/protocol.md, "Attachments").

Who may open a file: the chat's visitor (through a signed link only its own frames carry, and only
for public messages), the agents who held the chat or were tagged in it, supervisors of the chat's
department, compliance officers and administrators. When `CLAMAV_ADDRESS` is set, every file is
scanned before it is stored; a file that cannot be scanned is refused, never stored unscanned.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from chat.errors import ChatError, InvalidInput, NotFound
from chat.models import Attachment, AttachmentSettings, Conversation, Message
from chat.pipeline import Inbound, clean_body, run, validate_client_id

IMAGE_TYPES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "txt": "text/plain",
}
MAX_NAME_CHARS = 200
_SIGNER_SALT = "chat.attachment.visitor"


class AttachmentError(ChatError):
    """A refused upload; `status` is the HTTP status the views answer with."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message, code=code)
        self.status = status


class ScanUnavailable(Exception):
    pass


# --- settings ---------------------------------------------------------------------------------


def current_settings() -> AttachmentSettings:
    return AttachmentSettings.objects.order_by("pk").first() or AttachmentSettings()


def public_config() -> dict[str, Any]:
    """What the widget needs to check a file before sending it (and to set its file picker)."""
    conf = current_settings()
    return {"enabled": conf.enabled, "max_bytes": conf.max_bytes, "extensions": conf.extensions()}


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --- checks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedFile:
    name: str
    extension: str
    content_type: str
    data: bytes
    is_image: bool


def _clean_name(raw: Any) -> str:
    name = os.path.basename(str(raw or "").replace("\\", "/"))
    name = clean_body(name).replace("\n", " ").replace("\t", " ")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext) if dot else name[:MAX_NAME_CHARS]
    return name or "file"


def check_upload(upload: Any, *, conf: AttachmentSettings | None = None) -> CheckedFile:
    """Type and size against the allowlist; images must really be images. Nothing is stored."""
    conf = conf or current_settings()
    if not conf.enabled:
        raise AttachmentError("Sending files is switched off.", code="attachments_off", status=403)
    if upload is None:
        raise AttachmentError("Choose a file to send.", code="no_file")
    name = _clean_name(getattr(upload, "name", ""))
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    allowed = conf.extensions()
    if extension not in allowed:
        raise AttachmentError(
            f"Files of this type cannot be sent. Allowed: {', '.join(allowed) or 'none'}.",
            code="type_not_allowed",
            status=415,
        )
    size = getattr(upload, "size", None) or 0
    if size > conf.max_bytes:
        raise AttachmentError(
            f"The file is too large ({human_size(size)}); at most {human_size(conf.max_bytes)}.",
            code="too_large",
            status=413,
        )
    data = upload.read(conf.max_bytes + 1)
    if len(data) > conf.max_bytes:
        raise AttachmentError(
            f"The file is too large; at most {human_size(conf.max_bytes)}.", code="too_large", status=413
        )
    if not data:
        raise AttachmentError("The file is empty.", code="empty_file")
    is_image = extension in IMAGE_TYPES
    if is_image:
        _check_image(data, expected=IMAGE_TYPES[extension])
    content_type = CONTENT_TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return CheckedFile(name=name, extension=extension, content_type=content_type, data=data, is_image=is_image)


def _check_image(data: bytes, *, expected: str) -> None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            found = image.format
            image.verify()
    except Exception as exc:  # any decoder complaint means "not an image"
        raise AttachmentError("The file is not a valid image.", code="not_an_image") from exc
    if found != expected:
        raise AttachmentError(
            f"The file is a {found or 'different'} file, not what its name says.", code="not_an_image"
        )


# --- ClamAV -----------------------------------------------------------------------------------


def scan(data: bytes) -> str | None:
    """Ask clamd (INSTREAM). None: clean; a string: the signature found. ScanUnavailable if clamd
    cannot answer."""
    address = settings.CLAMAV_ADDRESS
    timeout = settings.CLAMAV_TIMEOUT_SECONDS
    try:
        if address.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address
        else:
            host, _, port = address.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_STREAM)
            target = (host.strip("[]") or "127.0.0.1", int(port))
        with sock:
            sock.settimeout(timeout)
            sock.connect(target)
            sock.sendall(b"zINSTREAM\0")
            for start in range(0, len(data), 65536):
                chunk = data[start : start + 65536]
                sock.sendall(len(chunk).to_bytes(4, "big") + chunk)
            sock.sendall(b"\0\0\0\0")
            reply = b""
            while not reply.endswith(b"\0"):
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
    except (OSError, ValueError) as exc:
        raise ScanUnavailable(str(exc)) from exc
    text = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
    if text.endswith("OK"):
        return None
    if text.endswith("FOUND"):
        return text.partition(":")[2].rsplit(" ", 1)[0].strip() or "malware"
    raise ScanUnavailable(text or "no answer")


def _scan_or_refuse(data: bytes) -> Attachment.Scan:
    if not settings.CLAMAV_ADDRESS:
        return Attachment.Scan.NOT_SCANNED
    try:
        found = scan(data)
    except ScanUnavailable as exc:
        import logging

        logging.getLogger(__name__).warning("ClamAV unavailable: %s", exc)
        raise AttachmentError(
            "The file could not be checked for viruses right now, so it was not sent. Try again in a moment.",
            code="scan_unavailable",
            status=503,
        ) from exc
    if found is not None:
        raise AttachmentError(
            "The file was not sent: the virus scanner found a threat in it.", code="infected", status=422
        )
    return Attachment.Scan.CLEAN


# --- sending ----------------------------------------------------------------------------------


def meta_of(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "is_image": attachment.is_image,
    }


def send_file(
    *,
    conversation: Conversation,
    upload: Any,
    role: str,
    sender_id: int | None = None,
    client_id: Any = None,
    visibility: str = Message.Visibility.PUBLIC,
) -> Message:
    """Check, scan, store, and post the message that carries the file. A resend of a stored
    `client_id` returns the first message and stores nothing."""
    client_id = validate_client_id(client_id)
    if client_id is not None:
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            if existing.role != role or existing.sender_id != sender_id:
                raise ChatError("That client_id was already used by another sender.", code="duplicate_client_id")
            return existing
    checked = check_upload(upload)
    scan_state = _scan_or_refuse(checked.data)
    now = timezone.now()
    stored_name = default_storage.save(
        f"attachments/{now:%Y/%m}/{uuid.uuid4().hex}", ContentFile(checked.data)
    )
    try:
        with transaction.atomic():
            attachment = Attachment.objects.create(
                conversation=conversation,
                file=stored_name,
                name=checked.name,
                content_type=checked.content_type,
                size=len(checked.data),
                sha256=hashlib.sha256(checked.data).hexdigest(),
                is_image=checked.is_image,
                scan=scan_state,
                scanned_at=now if scan_state == Attachment.Scan.CLEAN else None,
                created_at=now,
            )
            message, created = run(
                Inbound(
                    conversation_id=conversation.pk,
                    role=role,
                    sender_id=sender_id,
                    body=f"[Attachment: {checked.name}]",
                    client_id=client_id,
                    visibility=visibility,
                    meta={"attachment": meta_of(attachment)},
                )
            )
            if not created:  # a resend raced in from another tab: the first copy stands
                raise _Duplicate(message)
            attachment.message = message
            attachment.save(update_fields=["message"])
    except _Duplicate as dup:
        default_storage.delete(stored_name)
        return dup.message
    except BaseException:
        default_storage.delete(stored_name)
        raise
    return message


class _Duplicate(Exception):
    def __init__(self, message: Message) -> None:
        super().__init__("duplicate")
        self.message = message


def send_from_visitor(*, token: Any, upload: Any, client_id: Any = None) -> Message:
    from chat import ratelimit, selectors

    visitor = selectors.get_visitor_by_token(token=token)
    if visitor is None:
        raise AttachmentError("This visitor token is not valid.", code="invalid_token", status=403)
    conversation = selectors.open_conversation_for_visitor(visitor=visitor)
    if conversation is None:
        raise AttachmentError("You have no open chat; start one first.", code="not_found", status=404)
    if not (isinstance(client_id, str) and conversation.messages.filter(client_id=client_id).exists()):
        ratelimit.check_visitor_message(conversation_id=conversation.pk)
    return send_file(conversation=conversation, upload=upload, role=Message.Role.VISITOR, client_id=client_id)


def send_from_staff(*, user: Any, conversation_id: Any, upload: Any, client_id: Any = None, visibility: Any = "public") -> Message:
    """The agent holding the active chat; a tagged helper only as an internal note."""
    from chat import collab, selectors

    if visibility not in (Message.Visibility.PUBLIC, Message.Visibility.INTERNAL):
        raise InvalidInput("visibility must be public or internal.", code="invalid_field")
    try:
        conversation = selectors.get_conversation_for_staff(user=user, conversation_id=conversation_id)
    except NotFound:
        conversation = collab.get_conversation_for_helper(user=user, conversation_id=conversation_id)
        if visibility != Message.Visibility.INTERNAL:
            raise InvalidInput("You are helping in this chat: only internal notes.", code="internal_only") from None
    if conversation.status != Conversation.Status.ACTIVE:
        raise AttachmentError("Accept the chat before sending files in it.", code="not_active", status=409)
    role = Message.Role.AGENT if hasattr(user, "agent") else Message.Role.SUPERVISOR
    message = send_file(
        conversation=conversation, upload=upload, role=role, sender_id=user.pk, client_id=client_id,
        visibility=visibility,
    )
    if visibility == Message.Visibility.PUBLIC:
        from chat.services import record_first_reply

        record_first_reply(conversation=conversation, at=message.created_at)
    return message


# --- links and access -------------------------------------------------------------------------


def visitor_url(attachment_id: int) -> str:
    signature = signing.Signer(salt=_SIGNER_SALT).signature(str(attachment_id))
    return reverse("attachment_visitor", args=[attachment_id, signature])


def staff_url(attachment_id: int) -> str:
    return reverse("attachment_staff", args=[attachment_id])


def visitor_frame_part(meta: dict[str, Any]) -> dict[str, Any] | None:
    info = meta.get("attachment") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("id"), int):
        return None
    return {**{k: info.get(k) for k in ("id", "name", "size", "content_type", "is_image")}, "url": visitor_url(info["id"])}


def staff_frame_part(meta: dict[str, Any]) -> dict[str, Any] | None:
    info = meta.get("attachment") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("id"), int):
        return None
    return {**{k: info.get(k) for k in ("id", "name", "size", "content_type", "is_image")}, "url": staff_url(info["id"])}


def for_visitor(*, attachment_id: int, signature: str) -> Attachment:
    expected = signing.Signer(salt=_SIGNER_SALT).signature(str(attachment_id))
    import hmac

    if not hmac.compare_digest(expected, signature):
        raise NotFound("No such file.")
    attachment = (
        Attachment.objects.filter(pk=attachment_id, message__visibility=Message.Visibility.PUBLIC)
        .select_related("message")
        .first()
    )
    if attachment is None:
        raise NotFound("No such file.")
    return attachment


def for_staff(*, user: Any, attachment_id: int) -> Attachment:
    """Participants (held it, tagged in it) and those overseeing its department; whispers' files
    only to their two ends."""
    from compliance import roles

    attachment = Attachment.objects.filter(pk=attachment_id).select_related("conversation", "message").first()
    if attachment is None or attachment.message is None:
        raise NotFound("No such file.")
    conversation = attachment.conversation
    message = attachment.message
    if message.visibility == Message.Visibility.WHISPER and user.pk not in (message.sender_id, message.whisper_to_id):
        raise NotFound("No such file.")
    if getattr(user, "is_superuser", False):
        return attachment
    scope = roles.department_scope(user)
    if scope is None or conversation.department_id in scope:
        return attachment
    took_part = Conversation.objects.filter(pk=conversation.pk).filter(
        Q(assignments__agent__user=user) | Q(helpers__agent__user=user) | Q(agent__user=user)
    ).exists()
    if not took_part:
        raise NotFound("No such file.")
    return attachment


def delete_file_on_commit(attachment: Attachment) -> None:
    name = attachment.file.name
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))
