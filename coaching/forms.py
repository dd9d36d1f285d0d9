from __future__ import annotations

from django import forms

from chat.models import AgentProfile, Department
from coaching.models import Criterion, Scenario, Scorecard


class ReplyForm(forms.Form):
    reply = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )


class ScorecardForm(forms.Form):
    """One field per criterion of the chosen scorecard: yes/no or 1 to 5."""

    def __init__(self, *args, scorecard: Scorecard, **kwargs):
        super().__init__(*args, **kwargs)
        self.criteria = list(scorecard.criteria.all())
        for c in self.criteria:
            if c.kind == Criterion.Kind.YES_NO:
                choices = [(1, "Yes"), (0, "No")]
            else:
                choices = [(i, str(i)) for i in range(1, 6)]
            self.fields[f"criterion_{c.pk}"] = forms.TypedChoiceField(
                label=f"{c.label} (weight {c.weight})",
                choices=choices,
                coerce=int,
                widget=forms.RadioSelect,
            )

    def values(self) -> dict[int, int]:
        return {c.pk: self.cleaned_data[f"criterion_{c.pk}"] for c in self.criteria}


class MockChatForm(forms.Form):
    scenario = forms.ModelChoiceField(queryset=Scenario.objects.all())
    agent = forms.ModelChoiceField(
        queryset=AgentProfile.objects.order_by("display_name"), required=False
    )
    department = forms.ModelChoiceField(queryset=Department.objects.all(), required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("agent")) == bool(data.get("department")):
            raise forms.ValidationError("Choose an agent or a department, not both.")
        return data
