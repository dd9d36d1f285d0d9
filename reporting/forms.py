"""The dashboard's filters: every mistake becomes a clear message, never a 500 or an empty page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from reporting import selectors
from reporting.models import ReportingSettings


class DashboardFilterForm(forms.Form):
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    department = forms.CharField(label="Department", required=False)
    agent = forms.IntegerField(label="Agent", required=False, min_value=1)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.settings = ReportingSettings.load()
        self.departments = selectors.departments_visible_to(user)
        self.agents = selectors.agents_visible_to(user)

    def clean_department(self) -> Any:
        slug = self.cleaned_data.get("department") or ""
        if not slug:
            return None
        department = self.departments.filter(slug=slug).first()
        if department is None:
            raise forms.ValidationError(f"Unknown department “{slug}”.")
        return department

    def clean_agent(self) -> Any:
        agent_id = self.cleaned_data.get("agent")
        if agent_id is None:
            return None
        agent = self.agents.filter(pk=agent_id).first()
        if agent is None:
            raise forms.ValidationError("Unknown agent.")
        return agent

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        today = timezone.now().astimezone(self.settings.tzinfo).date()
        end = data.get("end") or today
        start = data.get("start") or end - dt.timedelta(days=27)
        if end < start:
            raise forms.ValidationError(f"The range runs backwards: {end} is before {start}.")
        days = (end - start).days + 1
        if days > self.settings.max_range_days:
            raise forms.ValidationError(
                f"The range is {days} days long; at most {self.settings.max_range_days} days are allowed."
            )
        data["start"], data["end"] = start, end
        return data

    def previous_range(self) -> tuple[dt.date, dt.date]:
        start, end = self.cleaned_data["start"], self.cleaned_data["end"]
        length = end - start + dt.timedelta(days=1)
        return start - length, end - length
