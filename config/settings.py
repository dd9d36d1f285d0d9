"""Coachline settings: everything comes from the environment (see README's table).

Nothing set gives the embedded default: SQLite in ./data, Channels' in-memory layer,
Celery tasks run eagerly in-process, e-mail to the console. DATABASE_URL and REDIS_URL
switch to real mode: PostgreSQL, channels-redis, a real Celery worker and beat.
"""

from __future__ import annotations

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
    "chat",
    "coaching",
    "compliance",
    "reporting",
    "django_celery_beat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "coachline.sqlite3",
            # IMMEDIATE transactions take SQLite's write lock at BEGIN, so two requests that
            # read-then-write (routing, sequence numbers) serialize instead of failing with
            # "database is locked" half-way through.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer relays several times more messages per second than the list-based
            # layer on this hardware (see docs/benchmarks.md); losing a frame is acceptable because
            # the database, not the layer, is the source of truth and clients resync by sequence.
            "BACKEND": envstr("CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer"),
            "CONFIG": {"hosts": [REDIS_URL], "prefix": envstr("CHANNEL_LAYER_PREFIX", "coachline")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "chat-sweep": {"task": "chat.tasks.sweep", "schedule": 5.0},
    "reporting-refresh-today": {"task": "reporting.tasks.refresh_today", "schedule": 300.0},
}
# Real mode: beat also reads the metric e-mail schedules edited in admin (django-celery-beat);
# CELERY_BEAT_SCHEDULE above is merged into its database on start.
if REAL_MODE:
    CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
