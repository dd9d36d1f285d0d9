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

from compliance.encryption import EncryptedTextField
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


# --- Archive, storage and retention (compliance.archive and compliance.retention use them) -----


class ArchiveSettings(models.Model):
    """The one row of archive settings (primary key 1); absent means the local filesystem.

    Where transcripts go is an administrator's choice, not a deployment setting, so it can change
    without a restart; archived objects keep the backend they were written to (see
    ConversationArchive.backend) only as a record: reads use the current settings.
    """

    class Backend(models.TextChoices):
        LOCAL = "local", "Local filesystem (the server's data directory)"
        S3 = "s3", "Amazon S3 or an S3-compatible service"
        AZURE = "azure", "Azure Blob Storage"

    class Encryption(models.TextChoices):
        NONE = "", "None (the bucket's default)"
        AES256 = "AES256", "SSE-S3 (AES256)"
        KMS = "aws:kms", "SSE-KMS"

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.LOCAL)
    key_prefix = models.CharField(
        max_length=200,
        blank=True,
        default="coachline/transcripts",
        help_text="Folder inside the bucket or container (or the local archive directory).",
    )
    endpoint_url = models.URLField(
        max_length=500,
        blank=True,
        help_text=(
            "S3: leave empty for Amazon S3, or an S3-compatible endpoint. Azure: the blob endpoint, "
            "empty for https://<account>.blob.core.windows.net. Must be HTTPS."
        ),
    )
    local_test_endpoint = models.BooleanField(
        "local test endpoint",
        default=False,
        help_text=(
            "Allow a plain-HTTP endpoint on this machine (127.0.0.1 / localhost) for testing with "
            "an emulator. Never for real data."
        ),
    )
    bucket = models.CharField("bucket or container", max_length=255, blank=True)
    region = models.CharField(max_length=50, blank=True, help_text="S3 only, e.g. eu-central-1.")
    server_side_encryption = models.CharField(
        max_length=10, choices=Encryption.choices, blank=True, default=Encryption.AES256
    )
    kms_key_id = models.CharField("KMS key id", max_length=255, blank=True)
    access_key = models.CharField(
        "access key id or account name", max_length=255, blank=True
    )
    # Secrets: encrypted at rest (compliance.encryption), written by the admin form and never
    # rendered back (see ArchiveSettingsForm).
    secret_key = EncryptedTextField("secret access key or account key", blank=True)
    link_expiry_seconds = models.PositiveIntegerField(
        default=300, help_text="How long a link to an archived transcript works (at most 900)."
    )
    conduit_mode = models.BooleanField(
        default=False,
        help_text=(
            "Keep no message bodies in the application database once a transcript's archive is "
            "confirmed; transcripts are then read back from storage."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "archive settings"
        verbose_name_plural = "archive settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="archive_settings_singleton"),
            models.CheckConstraint(
                condition=Q(link_expiry_seconds__gte=1, link_expiry_seconds__lte=900),
                name="archive_link_expiry_minutes",
            ),
        ]

    def __str__(self) -> str:
        return "Archive settings"

    def clean(self) -> None:
        from compliance.storage import endpoint_problem

        errors: dict[str, str] = {}
        if self.backend != self.Backend.LOCAL and not self.bucket:
            errors["bucket"] = "Name the bucket or container."
        if self.backend == self.Backend.AZURE and not self.access_key:
            errors["access_key"] = "Azure needs the storage account name."
        problem = endpoint_problem(self.endpoint_url, local_test=self.local_test_endpoint)
        if problem:
            errors["endpoint_url"] = problem
        if self.server_side_encryption == self.Encryption.KMS and not self.kms_key_id:
            errors["kms_key_id"] = "SSE-KMS needs a key id."
        if errors:
            raise ValidationError(errors)


class ConversationArchive(models.Model):
    """The archive state of one conversation's transcript.

    Kept after retention purges the conversation (conversation becomes NULL, conversation_number
    stays), so what was archived, where and with which checksum remains provable.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be archived"
        CONFIRMED = "confirmed", "Archived and confirmed"
        FAILED = "failed", "Failed (will be retried)"

    conversation = models.OneToOneField(
        "chat.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="archive",
    )
    conversation_number = models.PositiveBigIntegerField(unique=True)
    department = models.ForeignKey(
        "chat.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    backend = models.CharField(max_length=10, blank=True)
    location = models.CharField(max_length=500, blank=True, help_text="The JSON transcript.")
    html_location = models.CharField(max_length=500, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the JSON.")
    size = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a failed archive is tried again."
    )
    legal_hold = models.BooleanField(
        default=False, help_text="Never purge this conversation while the hold is on."
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    bodies_dropped_at = models.DateTimeField(
        null=True, blank=True, help_text="Conduit mode: message bodies removed from the database."
    )
    purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="confirmed") | ~Q(checksum=""),
                name="confirmed_archive_has_checksum",
            ),
            models.CheckConstraint(
                condition=Q(bodies_dropped_at__isnull=True) | Q(state="confirmed"),
                name="bodies_dropped_only_when_confirmed",
            ),
        ]

    def __str__(self) -> str:
        return f"Archive of conversation {self.conversation_number}"


class RetentionPolicy(models.Model):
    """How long ended conversations are kept: one row per department, one without (the default)."""

    department = models.OneToOneField(
        "chat.Department",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Leave empty for the default of every department without its own policy.",
    )
    keep_days = models.PositiveIntegerField(
        help_text="Days after a conversation ends before it is purged (once its archive is confirmed)."
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(
                fields=["department"],
                condition=Q(department__isnull=True),
                name="one_default_retention_policy",
            ),
            models.CheckConstraint(condition=Q(keep_days__gte=1), name="retention_keep_days_positive"),
        ]

    def __str__(self) -> str:
        where = self.department.name if self.department_id else "every other department"
        return f"{where}: {self.keep_days} days"


class RemaskJob(models.Model):
    """Applying the current archive masking rules to stored history, in resumable batches."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    rule = models.ForeignKey(
        MaskingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    class Phase(models.TextChoices):
        MESSAGES = "messages", "Message bodies in the database"
        ARCHIVES = "archives", "Archived transcripts"

    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.MESSAGES)
    # The resume points: everything with a smaller or equal id has been processed.
    last_message_id = models.PositiveBigIntegerField(default=0)
    last_archive_id = models.PositiveBigIntegerField(default=0)
    messages_changed = models.PositiveIntegerField(default=0)
    archives_rewritten = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Re-masking job {self.pk} ({self.state})"


class ContentSafetySettings(models.Model):
    """The one row of content-safety switches (primary key 1); absent means all off.

    Blocking copy and paste in the pages is a deterrent against casual copying of chat text,
    not a guarantee: anyone can take a screenshot, read the page source or use developer tools.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    block_copy_agent = models.BooleanField(
        "block copy and paste in the agent workspace",
        default=False,
        help_text="Agents cannot copy chat text out of, or paste into, the chats (a deterrent).",
    )
    block_copy_visitor = models.BooleanField(
        "block copy and paste in the visitor chat",
        default=False,
        help_text="Visitors cannot copy chat text out of, or paste into, the chat (a deterrent).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "content safety settings"
        verbose_name_plural = "content safety settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="content_safety_settings_singleton")
        ]

    def __str__(self) -> str:
        return "Content safety settings"
