"""Changes to an agent's own profile: the avatar."""

from __future__ import annotations

import io
import uuid
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction

from chat.models import AgentProfile

AVATAR_SIZE = 128


def _square_png(upload: Any) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(upload) as image:
        image = ImageOps.exif_transpose(image)
        image = ImageOps.fit(
            image.convert("RGBA"), (AVATAR_SIZE, AVATAR_SIZE), Image.Resampling.LANCZOS
        )
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def set_avatar(*, agent: AgentProfile, image: Any, actor: Any) -> AgentProfile:
    """Store a 128×128 PNG re-encoded from the upload (nothing of the original file is kept)."""
    from compliance import audit

    data = _square_png(image)
    old = agent.avatar.name if agent.avatar else ""
    with transaction.atomic():
        agent.avatar.save(f"{uuid.uuid4().hex}.png", ContentFile(data), save=False)
        agent.save(update_fields=["avatar"])
        audit.record(action="agent.avatar_changed", actor=actor, target=f"agent:{agent.pk}")
    if old:
        transaction.on_commit(lambda: agent.avatar.storage.delete(old))
    return agent


def remove_avatar(*, agent: AgentProfile, actor: Any) -> AgentProfile:
    from compliance import audit

    old = agent.avatar.name if agent.avatar else ""
    if not old:
        return agent
    with transaction.atomic():
        agent.avatar = ""
        agent.save(update_fields=["avatar"])
        audit.record(action="agent.avatar_removed", actor=actor, target=f"agent:{agent.pk}")
    storage = AgentProfile._meta.get_field("avatar").storage
    transaction.on_commit(lambda: storage.delete(old))
    return agent
