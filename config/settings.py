"""Coachline settings: everything comes from the environment (see README's table).

Nothing set gives the embedded default: SQLite in ./data, Channels' in-memory layer,
Celery tasks run eagerly in-process, e-mail to the console. DATABASE_URL and REDIS_URL
switch to real mode: PostgreSQL, channels-redis, a real Celery worker and beat.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from config.env import ConfigError, envbool, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("COACHLINE_DATA_DIR", str(BASE_DIR / "data")))

DEBUG = envbool("DEBUG", False)
_DEV_SECRET = "insecure-embedded-default-only-for-local-use"
SECRET_KEY = envstr("SECRET_KEY", _DEV_SECRET)
DATABASE_URL = envstr("DATABASE_URL")
REDIS_URL = envstr("REDIS_URL")
REAL_MODE = bool(DATABASE_URL and REDIS_URL)
if REAL_MODE and SECRET_KEY == _DEV_SECRET and not envbool("COACHLINE_ALLOW_DEV_SECRET", False):
    raise ConfigError("SECRET_KEY must be set in real mode (DATABASE_URL and REDIS_URL are set)")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "chat",
    "coaching",
    "compliance",
    "reporting",
    "axes",
    "csp",
    "django_celery_beat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "compliance.session_guard.StaffSessionMiddleware",  # two-factor and idle logoff
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "compliance.middleware.StaffAccessMiddleware",
    # django-axes wants to be last: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "compliance.context_processors.content_safety",
                "coaching.context_processors.coaching_inbox",
            ],
        },
    },
]

# See the embedded default below: SQLite's write lock at BEGIN, and a wait for it.
SQLITE_OPTIONS = {"transaction_mode": "IMMEDIATE", "timeout": 20}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A sqlite:/// URL (the browser tests' server) gets the same safety as the default.
        DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "coachline.sqlite3",
            # IMMEDIATE transactions take SQLite's write lock at BEGIN, so two requests that
            # read-then-write (routing, sequence numbers) serialize instead of failing with
            # "database is locked" half-way through.
            "OPTIONS": dict(SQLITE_OPTIONS),
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The password policy is edited in admin (compliance.PasswordPolicy); these validators read it.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "compliance.passwords.PolicyLengthValidator"},
    {"NAME": "compliance.passwords.PolicyCharacterClassesValidator"},
    {"NAME": "compliance.passwords.PolicySimilarityValidator"},
    {"NAME": "compliance.passwords.PolicyCommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "compliance.passwords.PasswordHistoryValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start when it is missing
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end packages pinned in package-lock.json and installed by `make install` (npm ci).
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
# Serve straight from the app folders so `make run` and the test servers need no collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "/media/"
MEDIA_ROOT = DATA_DIR / "media"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/agent/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Channels -------------------------------------------------------------------------
if REDIS_URL:
    # chat/redis_layer.py: channels-redis' pub/sub layer with each process' publishes pipelined.
    _LAYER_BACKEND = envstr("CHANNEL_LAYER_BACKEND", "chat.redis_layer.PipelinedPubSubChannelLayer")
    # redis-py waits forever by default. The pub/sub layer sends every publish, subscribe and
    # unsubscribe of the process through one connection under one lock, so one command to a Redis
    # that stopped answering would hold up every socket of the process; with a timeout it fails,
    # and chat/layer_watch.py reconnects. (The list-based layer blocks up to 5 s in BZPOPMIN by
    # design, so it gets a read timeout above that.)
    _LAYER_HOST = {"address": REDIS_URL, "socket_connect_timeout": 2,
                   "socket_timeout": 2 if _LAYER_BACKEND.endswith("PubSubChannelLayer") else 10}
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer relays several times more messages per second than the list-based
            # layer on this hardware (see docs/benchmarks.md); losing a frame is acceptable because
            # the database, not the layer, is the source of truth and clients resync by sequence.
            "BACKEND": _LAYER_BACKEND,
            "CONFIG": {"hosts": [_LAYER_HOST], "prefix": envstr("CHANNEL_LAYER_PREFIX", "coachline")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# Several installations (or parallel test runs) on one Redis keep their tasks apart by queue.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "chat-sweep": {"task": "chat.tasks.sweep", "schedule": 5.0},
    "compliance-retry-archives": {"task": "compliance.tasks.retry_archives", "schedule": 60.0},
    "compliance-purge-expired": {"task": "compliance.tasks.purge_expired", "schedule": 3600.0},
    "reporting-refresh-today": {"task": "reporting.tasks.refresh_today", "schedule": 300.0},
}
# Real mode: beat also reads the metric e-mail schedules edited in admin (django-celery-beat);
# CELERY_BEAT_SCHEDULE above is merged into its database on start.
if REAL_MODE:
    CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Embedded default: a thread in the server process sends scheduled metric e-mails and refreshes
# today's figures (reporting/scheduler.py); in real mode beat does.
REPORTING_INPROCESS_SCHEDULER = envbool("REPORTING_INPROCESS_SCHEDULER", not REDIS_URL)
REPORTING_SCHEDULER_INTERVAL_SECONDS = envint("REPORTING_SCHEDULER_INTERVAL_SECONDS", 30, minimum=1)

# --- E-mail ---------------------------------------------------------------------------
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "coachline@localhost")
EMAIL_FILE_PATH = envstr("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))

# --- Chat -----------------------------------------------------------------------------
CHAT_MAX_MESSAGE_CHARS = envint("CHAT_MAX_MESSAGE_CHARS", 4000, minimum=1)
# Frames above this are refused with close code 1009; daphne is started with the same limit.
CHAT_MAX_FRAME_BYTES = envint("CHAT_MAX_FRAME_BYTES", 65536, minimum=1024)
CHAT_ALLOWED_ORIGINS = envlist("CHAT_ALLOWED_ORIGINS", [])
# How long a visitor may be gone (no socket, no heartbeat) before a waiting chat counts as left.
CHAT_VISITOR_GRACE_SECONDS = envint("CHAT_VISITOR_GRACE_SECONDS", 60, minimum=1)
# How long an active chat may go without the visitor before the system ends it.
CHAT_VISITOR_IDLE_END_SECONDS = envint("CHAT_VISITOR_IDLE_END_SECONDS", 900, minimum=1)
# How long an agent may be gone (no socket, no heartbeat) before it is set offline.
CHAT_AGENT_GRACE_SECONDS = envint("CHAT_AGENT_GRACE_SECONDS", 90, minimum=1)
# In the embedded default each server process runs the sweeper (offer timeouts, departed
# visitors) itself; in real mode Celery beat does.
CHAT_INPROCESS_SWEEPER = envbool("CHAT_INPROCESS_SWEEPER", not REDIS_URL)
CHAT_SWEEP_INTERVAL_SECONDS = envint("CHAT_SWEEP_INTERVAL_SECONDS", 5, minimum=1)
# Per-visitor rate limits (0 turns one off); refused frames get the error code rate_limited.
CHAT_VISITOR_MESSAGES_PER_MINUTE = envint("CHAT_VISITOR_MESSAGES_PER_MINUTE", 30, minimum=0)
CHAT_VISITOR_CONVERSATIONS_PER_HOUR = envint("CHAT_VISITOR_CONVERSATIONS_PER_HOUR", 10, minimum=0)
# Threads that persist chat messages in parallel (chat/dbpool.py), each with its own connection;
# 0 = the one thread Channels shares for all database work. SQLite allows one writer anyway.
CHAT_MESSAGE_DB_THREADS = envint(
    "CHAT_MESSAGE_DB_THREADS", 8 if DATABASES["default"]["ENGINE"].endswith("postgresql") else 0, minimum=0
)
# Connections each server process keeps for storing messages from its event loop in one round
# trip (chat/message_fast_path.py, PostgreSQL only); 0 = every message through the threads above.
CHAT_FAST_PATH_CONNECTIONS = envint(
    "CHAT_FAST_PATH_CONNECTIONS", 4 if DATABASES["default"]["ENGINE"].endswith("postgresql") else 0, minimum=0
)
# Net allocations between the garbage collector's youngest-generation passes in a server process
# (config/server_gc.py); Python's own default is 700.
SERVER_GC_YOUNG_THRESHOLD = envint("SERVER_GC_YOUNG_THRESHOLD", 10_000, minimum=100)
# Move what a server process loaded to start into the collector's permanent generation, so full
# collections stop walking it (config/server_gc.py).
SERVER_GC_FREEZE_STARTUP = envbool("SERVER_GC_FREEZE_STARTUP", True)

# --- Compliance -----------------------------------------------------------------------
# Where the archive keeps transcripts when the back office chooses the local filesystem.
# Chat attachments: a ClamAV daemon ("127.0.0.1:3310" or a unix socket path such as
# /run/clamav/clamd.ctl) scans every file before it is stored; unset = files are not scanned.
CLAMAV_ADDRESS = envstr("CLAMAV_ADDRESS", "")
CLAMAV_TIMEOUT_SECONDS = envint("CLAMAV_TIMEOUT_SECONDS", 10, minimum=1)

COMPLIANCE_ARCHIVE_DIR = Path(envstr("COMPLIANCE_ARCHIVE_DIR", str(DATA_DIR / "archive")))
# Fernet keys for credentials stored in the database (compliance/encryption.py), comma-separated,
# newest first: the first encrypts, all decrypt. Empty: a key derived from SECRET_KEY (and from
# each of SECRET_KEY_FALLBACKS, for reading). Rotation: README "Encryption of stored credentials".
FIELD_ENCRYPTION_KEYS = envlist("FIELD_ENCRYPTION_KEYS", [])

# --- Staff sessions (compliance/two_factor.py, compliance/socket_auth.py) ----------------
# A staff session unused this long ends (no request, no chat frame; keep-alive pings don't count).
STAFF_IDLE_TIMEOUT_SECONDS = envint("STAFF_IDLE_TIMEOUT_SECONDS", 900, minimum=120)
# How often an open staff socket re-checks its session, user, roles and device.
STAFF_SOCKET_RECHECK_SECONDS = envint("STAFF_SOCKET_RECHECK_SECONDS", 30, minimum=1)
OTP_TOTP_ISSUER = envstr("OTP_TOTP_ISSUER", "Coachline")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Time, level and source on every line: an operator looking for an outage greps WARNING.
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# --- Staff access: lockout, network allowlists, HTTPS (README "Staff access policy") ------
# The back office never shows a user's TOTP secret or QR code: an administrator who could read
# them could log in as that user. (It also makes django-otp's config views refuse before they
# look the device up unchecked.)
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "compliance.backends.IPRestrictedModelBackend",
    "compliance.backends.AdministratorBackend",  # every permission for the Administrator role
]
# X-Forwarded-For is believed only behind this many proxies of your own (0: never).
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "compliance.access.client_ip"
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# "username+ip_address" counts failures per username from one address, so a typo-prone
# colleague cannot lock a whole office out; "username,ip_address" counts each separately.
AXES_LOCKOUT_PARAMETERS = [
    group.split("+") if "+" in group else group
    for group in envlist("LOGIN_LOCKOUT_PARAMETERS", ["username+ip_address"])
]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

COACHLINE_HTTPS = envbool("COACHLINE_HTTPS", False)
SESSION_COOKIE_SECURE = COACHLINE_HTTPS
CSRF_COOKIE_SECURE = COACHLINE_HTTPS
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", COACHLINE_HTTPS)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if COACHLINE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", COACHLINE_HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", COACHLINE_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# No inline script or style anywhere: every page's JavaScript and CSS are static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
