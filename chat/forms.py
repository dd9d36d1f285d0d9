from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from chat.models import AgentProfile, CannedResponse

AVATAR_MAX_BYTES = 2 * 1024 * 1024
AVATAR_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}


class OwnCannedResponseForm(forms.ModelForm):
    """An agent's personal canned response; shared and department sets are edited in admin."""

    class Meta:
        model = CannedResponse
        fields = ("shortcut", "title", "body")
        help_texts = {
            "body": "Placeholders: {visitor_name}, {visitor_first_name}, {visitor_email}, {agent_name}, "
            "{agent_first_name}, {department}."
        }

    def __init__(self, *args: Any, owner: AgentProfile, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_shortcut(self) -> str:
        shortcut = self.cleaned_data["shortcut"].lower()
        clash = CannedResponse.objects.filter(owner=self.owner, shortcut=shortcut)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError("You already have a response with this shortcut.")
        return shortcut

    def save(self, commit: bool = True) -> CannedResponse:
        response = super().save(commit=False)
        response.owner = self.owner
        response.department = None
        if commit:
            response.save()
        return response


class AvatarForm(forms.Form):
    image = forms.FileField(help_text="JPEG, PNG, GIF or WebP, at most 2 MB. Shown at 128×128.")

    def clean_image(self) -> Any:
        from PIL import Image, UnidentifiedImageError

        upload = self.cleaned_data["image"]
        if upload.size > AVATAR_MAX_BYTES:
            raise ValidationError("The picture is larger than 2 MB.")
        try:
            with Image.open(upload) as probe:
                kind = probe.format
                probe.verify()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValidationError("That file is not a picture we can read.") from exc
        if kind not in AVATAR_FORMATS:
            raise ValidationError("Use a JPEG, PNG, GIF or WebP picture.")
        upload.seek(0)
        return upload
