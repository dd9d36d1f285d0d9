"""The live chat domain: departments (queues), agents, visitors, conversations and messages.

The timestamps on Conversation and Assignment are what reporting computes wait time, first
response time and session length from; services set each exactly once, at the moment it happens.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q

from compliance.encryption import EncryptedTextField


class Department(models.Model):
    class Routing(models.TextChoices):
        AUTO = "auto", "Assign automatically"
        PICK = "pick", "Agents pick from the queue"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    routing = models.CharField(max_length=10, choices=Routing.choices, default=Routing.AUTO)
    accept_timeout_seconds = models.PositiveIntegerField(
        default=30,
        help_text="An offered chat that the agent has not accepted by then goes to the next agent.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentProfile(models.Model):
    class Presence(models.TextChoices):
        ONLINE = "online", "Online"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent")
    display_name = models.CharField(max_length=100)
    avatar = models.ImageField(upload_to="avatars/", blank=True)
    departments = models.ManyToManyField(Department, related_name="agents", blank=True)
    max_chats = models.PositiveSmallIntegerField(default=3)
    presence = models.CharField(max_length=10, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed_at = models.DateTimeField(null=True, blank=True)
    # Tie-break for routing: the agent whose last chat was assigned longest ago goes first.
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    # Heartbeat from the agent's sockets; the sweeper sets agents offline when it goes stale.
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(max_chats__gte=1), name="agent_max_chats_positive")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def initials(self) -> str:
        parts = [p for p in self.display_name.split() if p]
        return "".join(p[0] for p in parts[:2]).upper() or "?"


class PresenceInterval(models.Model):
    """One stretch of an agent in one presence state; reporting computes occupancy from these."""

    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="presence_intervals")
    status = models.CharField(max_length=10, choices=AgentProfile.Presence.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["agent", "started_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=Q(ended_at__isnull=True), name="one_open_presence_interval"
            )
        ]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Visitor(models.Model):
    # Only the hash of the server-issued token is stored: a copy of the database does not let
    # anyone resume a visitor's chat.
    token_hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    page_url = models.URLField(max_length=2000, blank=True)
    referrer = models.URLField(max_length=2000, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        # Not the name: this string appears in admin titles and links, where the archive masking
        # rules could not reach it (chat.readback masks the name where it is shown).
        return self.email or f"Visitor {self.pk}"


class Conversation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting in queue"
        OFFERED = "offered", "Offered to an agent"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        MISSED = "missed", "Missed"
        ABANDONED = "abandoned", "Abandoned"

    class EndedBy(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        AGENT = "agent", "Agent"
        SUPERVISOR = "supervisor", "Supervisor"
        SYSTEM = "system", "System"

    OPEN_STATUSES = (Status.QUEUED, Status.OFFERED, Status.ACTIVE)
    # Statuses that take one of the agent's chat slots.
    HELD_STATUSES = (Status.OFFERED, Status.ACTIVE)

    visitor = models.ForeignKey(Visitor, on_delete=models.PROTECT, related_name="conversations")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="conversations")
    agent = models.ForeignKey(
        AgentProfile, on_delete=models.PROTECT, null=True, blank=True, related_name="conversations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    subject = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField()
    queued_at = models.DateTimeField(null=True, blank=True)
    # FIFO key of the queue: a chat that goes back to the queue keeps its place at the front.
    queue_order_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True, help_text="First time an agent accepted it.")
    first_agent_reply_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=10, choices=EndedBy.choices, blank=True)

    # A mock chat a supervisor plays for training: excluded from every metric and sampling rule.
    is_training = models.BooleanField(default=False, db_index=True)

    class Disposition(models.TextChoices):
        RESOLVED = "resolved", "Resolved"
        FOLLOW_UP = "follow_up", "Follow-up ticket"
        SPAM = "spam", "Spam"

    # How the agent closed the chat after it ended (the workspace asks); blank until then.
    disposition = models.CharField(max_length=12, choices=Disposition.choices, blank=True)
    disposition_at = models.DateTimeField(null=True, blank=True)
    disposition_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    last_seq = models.PositiveIntegerField(default=0)
    # Visitors count only public messages, so the numbers they see have no gaps that would
    # betray internal notes or whispers in between.
    last_public_seq = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["department", "status", "queue_order_at"]),
            models.Index(fields=["agent", "status"]),
            models.Index(fields=["visitor", "status"]),
            models.Index(fields=["created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["offered", "active"]) | Q(agent__isnull=False),
                name="held_conversation_has_agent",
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Assignment(models.Model):
    """Who held (or was offered) a conversation when: the intervals reporting charges agents for."""

    class EndReason(models.TextChoices):
        TIMED_OUT = "timed_out", "Offer not accepted in time"
        DECLINED = "declined", "Offer declined"
        WITHDRAWN = "withdrawn", "Offer withdrawn"
        TRANSFERRED = "transferred", "Transferred"
        AGENT_LOST = "agent_lost", "Agent disconnected"
        CONVERSATION_ENDED = "ended", "Conversation ended"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="assignments")
    agent = models.ForeignKey(AgentProfile, on_delete=models.PROTECT, related_name="assignments")
    offered_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    first_reply_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=12, choices=EndReason.choices, blank=True)
    transfer_note = models.TextField(blank=True)

    class Meta:
        ordering = ["offered_at", "pk"]
        indexes = [models.Index(fields=["agent", "offered_at"])]
        constraints = [
            # The database itself refuses a second open holder of one conversation.
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(ended_at__isnull=True), name="one_open_assignment"
            )
        ]


class Message(models.Model):
    class Role(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        AGENT = "agent", "Agent"
        SUPERVISOR = "supervisor", "Supervisor"
        SYSTEM = "system", "System"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        INTERNAL = "internal", "Internal (staff only)"
        WHISPER = "whisper", "Whisper (supervisor to agent)"

    # No index of its own: message_seq_unique (conversation, seq) starts with it and serves every
    # lookup by chat, so a second one would only cost each insert.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    seq = models.PositiveIntegerField()
    # Sequence among public messages only: the number visitors see and resume from.
    public_seq = models.PositiveIntegerField(null=True, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    whisper_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    body = models.TextField()
    client_id = models.CharField(max_length=64, null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "public_seq"],
                condition=Q(public_seq__isnull=False),
                name="message_public_seq_unique",
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
            models.CheckConstraint(
                condition=~Q(visibility="whisper") | Q(whisper_to__isnull=False),
                name="whisper_has_recipient",
            ),
        ]
        indexes = [
            # The per-minute rate limit counts a chat's messages of one role since a minute ago,
            # under the chat's lock, for every message (chat_post_message, find_resend). Without
            # this the count read every message the chat ever had: in a 6,000-message chat 21 ms
            # against 0.4 ms, and the load benchmark's PostgreSQL CPU doubled within 100 s.
            models.Index(fields=["conversation", "role", "created_at"], name="message_rate_window_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}"


class CannedResponse(models.Model):
    """A prepared answer: a department's shared set, or an agent's own when `owner` is set."""

    title = models.CharField(max_length=100)
    shortcut = models.SlugField(max_length=40, help_text="Typed as /shortcut in the composer.")
    body = models.TextField()
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, null=True, blank=True, related_name="canned_responses"
    )
    owner = models.ForeignKey(
        AgentProfile, on_delete=models.CASCADE, null=True, blank=True, related_name="canned_responses"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class SurveyResponse(models.Model):
    """The visitor's post-chat survey; it may arrive long after the chat ended and still counts."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="survey")
    rating = models.PositiveSmallIntegerField(help_text="1 (poor) to 5 (excellent).")
    comment = models.TextField(blank=True)
    # Answers to the extra questions configured in admin, keyed by question.
    answers = models.JSONField(default=dict, blank=True)
    submitted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["submitted_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="survey_rating_1_to_5")
        ]

    def __str__(self) -> str:
        return f"Survey of conversation {self.conversation_id}: {self.rating}"


class Ticket(models.Model):
    """Follow-up work: made from a chat by an agent, or from a visitor's offline message."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        SOLVED = "solved", "Solved"

    class Source(models.TextChoices):
        CHAT = "chat", "From a chat"
        OFFLINE = "offline", "Offline message"

    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    source = models.CharField(max_length=10, choices=Source.choices)
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="tickets"
    )
    visitor = models.ForeignKey(Visitor, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    name = models.CharField(max_length=100, blank=True)
    email = models.EmailField()
    assignee = models.ForeignKey(
        AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"]),
            models.Index(fields=["assignee", "status"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        # Not the subject: this string appears in admin titles and logs, where the archive
        # masking rules could not reach it (chat.readback masks the subject where it is shown).
        return f"Ticket {self.pk}"


class TicketMessage(models.Model):
    """One entry of a ticket's thread: the visitor's message, an agent's e-mailed reply, a note."""

    class Kind(models.TextChoices):
        VISITOR = "visitor", "From the visitor"
        REPLY = "reply", "Reply e-mailed to the visitor"
        NOTE = "note", "Internal note"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ticket", "created_at", "pk"]


class InvitationRule(models.Model):
    """When the widget invites a visitor to chat, unasked."""

    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="invitation_rules")
    url_pattern = models.CharField(
        max_length=500, help_text="Pages it applies to, e.g. */pricing* (shell-style wildcards)."
    )
    # The name is the protocol's (docs/protocol.md); the time counts on the whole site.
    seconds_on_page = models.PositiveIntegerField(
        "seconds on the site",
        default=30,
        help_text="Seconds since the visitor arrived on the site, counted across page loads (a "
        "visit ends after 30 minutes without a page of the site open), before the invitation "
        "shows on a page that matches the pattern.",
    )
    message = models.CharField(max_length=500, default="Hello! Can we help you with anything?")
    only_when_capacity = models.BooleanField(
        default=True, help_text="Invite only while an online agent of the department has a free slot."
    )

    def __str__(self) -> str:
        return self.name


class ProactiveInvitation(models.Model):
    """One invitation shown to one visitor; reporting counts proactive chat requests from these."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    rule = models.ForeignKey(
        InvitationRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="invitations"
    )
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="invitations")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="invitations")
    page_url = models.URLField(max_length=2000, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENT)
    sent_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)
    conversation = models.OneToOneField(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="invitation"
    )

    class Meta:
        indexes = [models.Index(fields=["sent_at"]), models.Index(fields=["department", "sent_at"])]


# --- Agent workspace: collaboration and customer lookup ---------------------------------------


class ConversationHelper(models.Model):
    """An agent tagged (@name) in an internal note: may read the chat and write internal notes.

    Access lasts while the conversation is open; it never lets the helper write to the visitor.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="helpers")
    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="helping")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "agent"], name="one_helper_row_per_agent"),
        ]


class DirectMessage(models.Model):
    """Agent-to-agent chat, outside any conversation."""

    sender = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="dms_sent")
    recipient = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="dms_received")
    body = models.TextField()
    client_id = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["sender", "recipient", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"], condition=Q(client_id__isnull=False), name="dm_client_id_unique"
            ),
            models.CheckConstraint(condition=~Q(sender=models.F("recipient")), name="dm_not_to_self"),
        ]


class CrmLookup(models.Model):
    """Optional HTTP lookup of the visitor in the customer's CRM, shown in the visitor panel.

    One row (the first enabled one) is used. `url_template` gets {email} and {name}, URL-encoded.
    """

    enabled = models.BooleanField(default=True)
    url_template = models.CharField(
        max_length=500, help_text="e.g. https://crm.example/api/customers?email={email}"
    )
    header_name = models.CharField(max_length=100, blank=True, help_text="e.g. X-Api-Key; empty: no key sent")
    # Encrypted at rest (compliance.encryption); the admin form never shows it back.
    api_key = EncryptedTextField(blank=True)
    timeout_seconds = models.FloatField(default=2.0)
    cache_seconds = models.PositiveIntegerField(default=60)

    class Meta:
        verbose_name = "CRM lookup"
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0, timeout_seconds__lte=30), name="crm_timeout_0_to_30"
            )
        ]

    def __str__(self) -> str:
        return self.url_template


class AllowedOrigin(models.Model):
    """A site allowed to embed the visitor widget (CHAT_ALLOWED_ORIGINS stays as a fallback)."""

    origin = models.CharField(
        max_length=300,
        unique=True,
        help_text="e.g. https://shop.example (scheme, host and port must match) or .example.com "
        "(that domain and its subdomains, any scheme and port).",
    )
    note = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["origin"]

    def __str__(self) -> str:
        return self.origin

    def clean(self) -> None:
        from urllib.parse import urlparse

        from django.core.exceptions import ValidationError

        value = self.origin.strip()
        if value == "*" or not value:
            raise ValidationError({"origin": "Name the site; '*' would let every site embed the chat."})
        if "://" in value:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
                raise ValidationError({"origin": "An origin is scheme://host[:port], without a path."})
            value = value.rstrip("/")
        elif "/" in value or " " in value:
            raise ValidationError({"origin": "Give a host (shop.example, .example.com) or an origin (https://shop.example)."})
        self.origin = value


class WidgetDepartmentSettings(models.Model):
    """What the widget asks and when it goes offline, for one department."""

    department = models.OneToOneField(Department, on_delete=models.CASCADE, related_name="widget_settings")
    require_name = models.BooleanField(default=True)
    require_email = models.BooleanField(default=False)
    require_question = models.BooleanField(default=False)
    offline_message = models.CharField(
        max_length=500,
        default="We are not online right now. Leave us a message and we will answer by e-mail.",
    )
    # Empty means "always open"; times are in the organisation's time zone (TIME_ZONE).
    business_hours = models.JSONField(
        default=dict,
        blank=True,
        help_text='Opening hours per weekday, e.g. {"mon": ["09:00", "17:00"], "sat": []}. '
        "A weekday not listed is closed; leave empty for always open.",
    )

    WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    class Meta:
        verbose_name_plural = "widget department settings"

    def __str__(self) -> str:
        return f"Widget settings of {self.department}"

    def clean(self) -> None:
        # A readable error instead of a department that is silently closed all week.
        from django.core.exceptions import ValidationError

        hours = self.business_hours
        if not isinstance(hours, dict):
            raise ValidationError({"business_hours": "Give an object keyed by weekday (mon … sun)."})
        for key, value in hours.items():
            if key not in self.WEEKDAYS:
                raise ValidationError({"business_hours": f"{key!r} is not a weekday; use mon, tue, … sun."})
            if value == []:
                continue
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(isinstance(v, str) and len(v) == 5 and v[2] == ":" for v in value)
                or value[0] >= value[1]
            ):
                raise ValidationError({"business_hours": f'{key}: give ["HH:MM", "HH:MM"], opening first, or [].'})


class SurveyQuestion(models.Model):
    """An extra question of the post-chat survey, asked after the rating and the comment."""

    key = models.SlugField(max_length=40, unique=True, help_text="Answers are stored under this key.")
    text = models.CharField(max_length=300)
    order = models.PositiveSmallIntegerField(default=0)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self) -> str:
        return self.text


# --- Blocking, attachments --------------------------------------------------------------------


class VisitorBlock(models.Model):
    """A visitor an agent blocked (spam, abuse): by its browser token, or by its IP address.

    A blocked visitor gets the offline form, never a chat. Lifting a block: untick `enabled`
    in the back office (the row stays as the record of who blocked whom and why).
    """

    class Kind(models.TextChoices):
        TOKEN = "token", "This visitor (browser token)"
        IP = "ip", "This IP address"

    kind = models.CharField(max_length=5, choices=Kind.choices)
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, null=True, blank=True, related_name="blocks")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="blocks"
    )
    department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="visitor_blocks"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    enabled = models.BooleanField(default=True, help_text="Untick to lift the block.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["ip_address", "enabled"]), models.Index(fields=["visitor", "enabled"])]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="token") & Q(visitor__isnull=False)) | (Q(kind="ip") & Q(ip_address__isnull=False)),
                name="visitor_block_has_target",
            )
        ]

    def __str__(self) -> str:
        return f"Block of {self.ip_address if self.kind == self.Kind.IP else self.visitor}"


class AttachmentSettings(models.Model):
    """Which files may be sent in chats, both ways. One row (the first) is used; without a row
    the defaults below apply."""

    DEFAULT_TYPES = "jpg jpeg png gif webp pdf txt"

    enabled = models.BooleanField(default=True, help_text="Untick to switch attachments off.")
    allowed_types = models.CharField(
        max_length=500,
        default=DEFAULT_TYPES,
        help_text="File name extensions allowed, separated by spaces, e.g. jpg png pdf. Images "
        "(jpg, jpeg, png, gif, webp) are checked to really be images and shown as previews.",
    )
    max_bytes = models.PositiveIntegerField(
        default=5 * 1024 * 1024, help_text="Largest file accepted, in bytes (5 MB = 5242880)."
    )

    class Meta:
        verbose_name = "attachment settings"
        verbose_name_plural = "attachment settings"
        constraints = [models.CheckConstraint(condition=Q(max_bytes__gte=1), name="attachment_max_bytes_positive")]

    def __str__(self) -> str:
        return "Attachment settings"

    def extensions(self) -> list[str]:
        return sorted({e.strip().lstrip(".").lower() for e in self.allowed_types.replace(",", " ").split() if e.strip()})


class Attachment(models.Model):
    """A file sent in a chat. The message it belongs to says "[Attachment: name]" in its text;
    the file itself is served only to the chat's visitor, the agents who took part and their
    supervisors (chat/attachments.py), and only once it was scanned when ClamAV is configured."""

    class Scan(models.TextChoices):
        NOT_SCANNED = "not_scanned", "Not scanned (no ClamAV configured)"
        CLEAN = "clean", "Scanned, clean"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="attachments")
    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="attachment"
    )
    file = models.FileField(upload_to="attachments/%Y/%m/", max_length=300)
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    is_image = models.BooleanField(default=False)
    scan = models.CharField(max_length=12, choices=Scan.choices)
    scanned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name
