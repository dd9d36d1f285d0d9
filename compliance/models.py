"""What an administrator configures about masking: own patterns, and the built-in detectors.

"Live" masking runs in the chat pipeline before a message is stored or shown to the agent, so
the raw value never exists anywhere. "Archive" masking runs on what is read back from storage
(transcripts, exports, e-mails, the archive); with live masking on it is a second safety net,
with live masking off it lets agents see a value that is still kept out of the records.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from compliance.masking import UnsafePattern, compile_rule_pattern


class MaskingRule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    pattern = models.CharField(
        max_length=500,
        help_text=(
            "A Python regular expression; every letter and digit it matches becomes X, other "
            "characters stay. Start with (?i) to ignore case. Try it with `manage.py mask`."
        ),
    )
    enabled = models.BooleanField(default=True)
    departments = models.ManyToManyField(
        "chat.Department",
        blank=True,
        related_name="+",
        help_text="Leave empty to apply the rule in every department.",
    )
    live = models.BooleanField(
        default=True, help_text="Mask before agents see or anything stores the text."
    )
    archive = models.BooleanField(
        default=True, help_text="Mask transcripts, exports, e-mails and the archive."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            compile_rule_pattern(self.pattern)
        except UnsafePattern as exc:
            raise ValidationError({"pattern": str(exc)}) from exc


class MaskingSettings(models.Model):
    """The one row of masking settings (primary key 1); absent means the defaults below."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    keep_last_four_card_digits = models.BooleanField(
        default=False,
        help_text="Leave the last four digits of card numbers visible (PCI DSS allows at most these).",
    )
    cards_live = models.BooleanField("mask card numbers live", default=True)
    cards_archive = models.BooleanField("mask card numbers in the archive", default=True)
    ssns_live = models.BooleanField("mask US Social Security numbers live", default=True)
    ssns_archive = models.BooleanField(
        "mask US Social Security numbers in the archive", default=True
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "masking settings"
        verbose_name_plural = "masking settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="masking_settings_singleton")]

    def __str__(self) -> str:
        return "Masking settings"


# --- Audit log (compliance.audit writes it; nothing else does) --------------------------------


class AppendOnlyError(Exception):
    """An attempt to change or remove audit entries through the ORM."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnlyError(f"The audit log is append-only: {what} is refused.")


class AuditEntryQuerySet(models.QuerySet):
    # Every bulk path that could rewrite or remove rows; model deletes cascade through
    # `_raw_delete`, saves of existing rows through `_update`.
    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("update")

    def _update(self, values: Any) -> NoReturn:
        _refuse("update")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        _refuse("update")

    def delete(self) -> NoReturn:
        _refuse("delete")

    def _raw_delete(self, using: Any) -> NoReturn:
        _refuse("delete")


class AuditEntry(models.Model):
    """One audited event, chained to the one before it by hash.

    Written only by `compliance.audit.record()`; `hash` is sha256 over the canonical JSON of the
    fields in `compliance.audit.HASHED_FIELDS` (which include `prev_hash`), so editing any entry
    or removing one from the middle breaks the chain where `verify_audit_log` can see it.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    at = models.DateTimeField()
    # PROTECT: an account that has audit entries is deactivated, not deleted; deleting it would
    # have to rewrite (SET_NULL) or remove (CASCADE) entries of an append-only log.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=100, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=100)
    target = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        # The export's filters. Every index slows each append a little, so only these; the
        # pattern opclass serves both equality and the "login.*" prefix filter on PostgreSQL.
        indexes = [
            models.Index(fields=["at"], name="compliance_audit_at"),
            models.Index(fields=["actor_username"], name="compliance_audit_username"),
            models.Index(
                fields=["action"], name="compliance_audit_action", opclasses=["varchar_pattern_ops"]
            ),
            models.Index(
                fields=["target"], name="compliance_audit_target", opclasses=["varchar_pattern_ops"]
            ),
        ]
        constraints = [
            # Each entry has at most one successor: two writers that read the same head can
            # never both commit, so the log cannot fork even if the append lock were bypassed.
            models.UniqueConstraint(fields=["prev_hash"], name="compliance_audit_one_successor"),
            models.CheckConstraint(
                condition=Q(outcome__in=["success", "failure", "denied"]),
                name="compliance_audit_outcome_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target} ({self.outcome})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("changing an entry")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleting an entry")


class RoleSecurity(models.Model):
    """Per-role login settings an administrator edits in admin (one row per role group)."""

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, related_name="security", primary_key=True
    )
    require_two_factor = models.BooleanField(
        default=True,
        help_text=(
            "Members must give a one-time code after their password. A user is let in with the "
            "password alone only if every role it holds has this off; superusers always need it."
        ),
    )

    class Meta:
        verbose_name = "role security setting"
        verbose_name_plural = "role security settings"

    def __str__(self) -> str:
        return f"{self.group.name}: two-factor {'required' if self.require_two_factor else 'optional'}"


# --- Staff access policy: passwords and network allowlists (compliance.access, .passwords) ----

ROLE_NAMES = ("Agent", "Supervisor", "Compliance officer", "Administrator")


class PasswordPolicy(models.Model):
    """The one row of password rules (primary key 1); absent means the defaults below.

    Read by the password validators in compliance.passwords, so every form that sets a password
    (login-page change, admin, `changepassword`) obeys the same rules.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    min_length = models.PositiveSmallIntegerField(
        default=12, validators=[MinValueValidator(8), MaxValueValidator(128)]
    )
    min_character_classes = models.PositiveSmallIntegerField(
        "character classes required",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(4)],
        help_text="How many of: lower case, upper case, digits, other characters. "
        "Length protects better than classes (NIST 800-63B); 1 means no class rule.",
    )
    reject_similar_to_username = models.BooleanField(default=True)
    reject_common = models.BooleanField(
        "reject common passwords", default=True, help_text="Django's list of 20,000 leaked passwords."
    )
    history_count = models.PositiveSmallIntegerField(
        "remembered passwords",
        default=5,
        validators=[MaxValueValidator(24)],
        help_text="A new password may not be any of the user's last N (0 allows reuse).",
    )
    expiry_days = models.PositiveIntegerField(
        "expire after days",
        default=0,
        help_text="0 = never. NIST 800-63B and OWASP ASVS advise against forced rotation; "
        "offered for regulations that still require it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "password policy"
        verbose_name_plural = "password policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="password_policy_singleton")]

    def __str__(self) -> str:
        return "Password policy"


class PasswordHistory(models.Model):
    """Hashes of a user's recent passwords (never the passwords), newest last; the newest one's
    time is when the password was last changed, which expiry counts from."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    password_hash = models.CharField(max_length=128)
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "password history"
        indexes = [models.Index(fields=["user", "-changed_at"], name="compliance_pwhist_user")]


class IPAllowRule(models.Model):
    """One network staff may work from. With no enabled rule for a scope, that scope is open;
    with some, a staff member's address must be in one of them (see compliance.access)."""

    network = models.CharField(
        max_length=64, help_text="An address or a CIDR network: 203.0.113.0/24, 2001:db8::/32."
    )
    role = models.CharField(
        max_length=150,
        blank=True,
        choices=[(name, name) for name in ROLE_NAMES],
        help_text="Leave empty for the global list, which applies to every staff member.",
    )
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["role", "network"]
        verbose_name = "IP allow rule"
        constraints = [
            models.UniqueConstraint(fields=["network", "role"], name="compliance_ip_rule_unique")
        ]

    def __str__(self) -> str:
        return f"{self.network} ({self.role or 'all staff'})"

    def clean(self) -> None:
        import ipaddress

        try:
            self.network = str(ipaddress.ip_network(self.network.strip(), strict=False))
        except ValueError as exc:
            raise ValidationError({"network": f"Not an address or CIDR network: {exc}"}) from exc
