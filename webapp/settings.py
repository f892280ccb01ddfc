"""Django settings, every one read from the environment (see webapp/env.py for the parsing rules).

Production needs at least SECRET_KEY, ALLOWED_HOSTS and (for more than one
machine) DATABASE_URL, REDIS_URL and shared storage. DEBUG=1 turns on the local
development conveniences: a throwaway SECRET_KEY, localhost hosts, plain-HTTP
cookies. `python manage.py check --deploy` is clean with a production environment.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from .env import EnvError, check_url, env_bool, env_float, env_int, env_list, env_path, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the service writes on its own disk (SQLite, media, broker folders); git-ignored.
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)

# Only a development run may use a key that is public (it is in this file).
SECRET_KEY = env_str(
    "SECRET_KEY", "django-insecure-development-only-key-never-use-it-in-production" if DEBUG else None)
if not SECRET_KEY:
    raise EnvError("environment variable SECRET_KEY is required when DEBUG is off; generate one with "
                   "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, or set DEBUG=1 for a "
                   "local development run")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    check_url("CSRF_TRUSTED_ORIGINS", _origin, schemes=("http", "https"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webapp.apps.WebappConfig",
    "rest_framework",
    "knox",  # API tokens, stored hashed (webapp/api/tokens.py)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served from static/ (no CDN)
    "webapp.api.apps.ApiConfig",  # the REST API's own table (idempotency keys)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response, also the redirects and refusals below.
    "webapp.pages.content_security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # 413 for a body over the upload limits, before CSRF's check or a view reads it.
    "webapp.pages.request_limits.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # 503 for any view while the file store (the bucket) cannot be reached (issue 15).
    "webapp.pages.storage_down.StorageDownMiddleware",
]

ROOT_URLCONF = "webapp.urls"

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

# -- database --------------------------------------------------------------------------
# SQLite file by default (one machine, nothing to install); PostgreSQL in production:
# DATABASE_URL=postgres://user:password@host:5432/name
DATABASE_URL = env_url("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
# Connections are not kept between requests (0): under ASGI each request's synchronous code runs in
# a thread of its own, and a kept connection would stay with a thread that is gone.
DATABASES = {"default": dj_database_url.parse(
    DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, min=0), conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Web server and worker write at the same time: WAL lets readers go on during a
        # write, IMMEDIATE takes the write lock at BEGIN (no deadlock on lock upgrade,
        # and it serialises create_job's count-then-insert), and waits up to 20 s for it.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    _sqlite_name = str(DATABASES["default"]["NAME"])
    if _sqlite_name and _sqlite_name != ":memory:":
        Path(_sqlite_name).parent.mkdir(parents=True, exist_ok=True)
# A pool of at most DB_POOL_SIZE PostgreSQL connections per process, for the web tier only (its
# gunicorn configuration sets it): there every request runs in a thread of its own with a
# connection of its own, and a burst of a few hundred page loads over a few processes would pass
# PostgreSQL's max_connections (100 by default: "sorry, too many clients already", a 500). With
# the pool a request waits up to DB_POOL_TIMEOUT s for a connection instead. Not for Celery
# workers: the pool's threads do not survive their fork.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 0, min=0)
if DB_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": DB_POOL_SIZE, "timeout": env_float("DB_POOL_TIMEOUT", 10.0, min=0.1)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# -- files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_URL = env_str("MEDIA_URL", "/media/")
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")

# -- files on several machines: S3-compatible storage (README, "Several machines") -------
# Uploads, results, previews, checkpoints and visualisations go through Django's storage API
# only (never local paths), so one bucket serves any number of worker machines. With
# S3_BUCKET set they live in that bucket (AWS S3, MinIO, Ceph, R2, ...), private: nothing in
# it is public, and people get files only through the owner-checking views, which stream
# them from the bucket (webapp/jobs/bucket.py says why not presigned redirects). Without it
# they live under MEDIA_ROOT, which only works when every worker sees the web's folder.
S3_BUCKET = env_str("S3_BUCKET", None)
# A worker refuses to start with files in a local folder unless this says the web sees the
# same folder (one machine: `make run`, the one-machine compose; or a network volume).
MEDIA_SHARED = env_bool("MEDIA_SHARED", False)
if S3_BUCKET:
    from botocore.config import Config as _S3Config

    S3_ENDPOINT_URL = env_url("S3_ENDPOINT_URL", None, schemes=("http", "https"))  # None: AWS itself
    # "path" (bucket in the path: MinIO, most self-hosted servers), "virtual" (bucket in the
    # host name) or "auto" (botocore picks; AWS). Default: path with an endpoint, else auto.
    S3_ADDRESSING_STYLE = env_str("S3_ADDRESSING_STYLE", "path" if S3_ENDPOINT_URL else "auto")
    # boto3 >= 1.36 sends CRC checksums with every upload and checks them on downloads; many
    # non-AWS servers refuse or lack them. "when_required" sends them only where S3 requires
    # them (works on AWS too); "when_supported" is boto3's own default.
    S3_CHECKSUMS = env_str("S3_CHECKSUMS", "when_required")
    for _name, _value, _allowed in (("S3_ADDRESSING_STYLE", S3_ADDRESSING_STYLE, ("auto", "path", "virtual")),
                                    ("S3_CHECKSUMS", S3_CHECKSUMS, ("when_required", "when_supported"))):
        if _value not in _allowed:
            raise EnvError(f"environment variable {_name} must be one of {', '.join(_allowed)}, not {_value!r}")
    _default_storage = {
        "BACKEND": "webapp.jobs.bucket.BucketStorage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL,
            "region_name": env_str("S3_REGION", None),
            # None: boto3's usual chain (instance role, AWS_* variables, ~/.aws)
            "access_key": env_str("S3_ACCESS_KEY_ID", None),
            "secret_key": env_str("S3_SECRET_ACCESS_KEY", None),
            "location": env_str("S3_PREFIX", ""),  # every key under this prefix ("" : the bucket's root)
            "default_acl": None,  # no ACL header: objects get the bucket's default, private
            "querystring_auth": True,  # url() (unused by the views) could only make signed URLs
            "file_overwrite": False,
            "client_config": _S3Config(
                s3={"addressing_style": S3_ADDRESSING_STYLE}, signature_version="s3v4",
                request_checksum_calculation=S3_CHECKSUMS, response_checksum_validation=S3_CHECKSUMS,
                # An unreachable bucket must fail a request in seconds (the views answer 503, a
                # job is retried), not hang a web process or a worker for minutes.
                connect_timeout=env_float("S3_CONNECT_TIMEOUT", 5.0, min=0.1),
                read_timeout=env_float("S3_READ_TIMEOUT", 60.0, min=0.1),
                retries={"mode": "standard", "max_attempts": env_int("S3_MAX_ATTEMPTS", 3, min=1, max=20)}),
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# -- limits ----------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024, min=1)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 25_000_000, min=1)
OUTPUT_MAX_SIZE = env_int("OUTPUT_MAX_SIZE", 2048, min=32, max=4096)  # long side of a result, px
JOB_MAX_STYLES = env_int("JOB_MAX_STYLES", 5, min=1, max=32)
JOBS_PER_USER = env_int("JOBS_PER_USER", 5, min=1)  # queued + running at once
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, min=1, max=100)
JOB_SOFT_TIME_LIMIT = env_int("JOB_SOFT_TIME_LIMIT", 3600, min=1)  # s; the job fails as timed out
JOB_HARD_TIME_LIMIT = env_int("JOB_HARD_TIME_LIMIT", JOB_SOFT_TIME_LIMIT + 300, min=1)  # s; process killed
if JOB_HARD_TIME_LIMIT <= JOB_SOFT_TIME_LIMIT:
    raise EnvError(f"JOB_HARD_TIME_LIMIT ({JOB_HARD_TIME_LIMIT}) must be longer than JOB_SOFT_TIME_LIMIT "
                   f"({JOB_SOFT_TIME_LIMIT}): the soft limit is the one that fails a job cleanly")
CHECKPOINT_EVERY_SECONDS = env_float("CHECKPOINT_EVERY_SECONDS", 60.0, min=0.0)
PROGRESS_EVERY_SECONDS = env_float("PROGRESS_EVERY_SECONDS", 1.0, min=0.0)
PREVIEW_EVERY_SECONDS = env_float("PREVIEW_EVERY_SECONDS", 5.0, min=0.0)
# 0: a running job reads its cancel flag after every iteration (a primary-key lookup).
CANCEL_CHECK_EVERY_SECONDS = env_float("CANCEL_CHECK_EVERY_SECONDS", 0.0, min=0.0)
# Up to this many compatible queued jobs run together in one pass through VGG19 (same sizes and
# schedule: webapp/worker/batching.py); 1 runs each job alone. A GPU worker gains from 8 or more
# at 512 px; a CPU gains little (bench/batch_cpu.py). A batch costs at most one job's budget
# (JOB_COST_BUDGET), so it fits the time limits one large job does.
WORKER_BATCH_SIZE = env_int("WORKER_BATCH_SIZE", 1, min=1, max=256)
# A running job's pool process writes the job's heartbeat this often from a thread of its own,
# whatever the engine is doing (loading, an iteration, the visualisations, uploads), with the
# database's clock (webapp/worker/job_heartbeat.py).
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 10.0, min=0.2)
# A running job whose heartbeat has stopped for this long is presumed lost (its worker or its
# machine died): a re-delivered message at any node takes it over, the reconciler requeues it.
# Several missed heartbeats, so a slow database write is not taken for a death.
STUCK_AFTER_SECONDS = env_int("STUCK_AFTER_SECONDS", 60, min=2)
if STUCK_AFTER_SECONDS < 3 * JOB_HEARTBEAT_SECONDS:
    raise EnvError(f"STUCK_AFTER_SECONDS ({STUCK_AFTER_SECONDS}) must be at least three JOB_HEARTBEAT_SECONDS "
                   f"({JOB_HEARTBEAT_SECONDS}): a live job would otherwise be taken for a lost one")
# Every worker writes its device and memory use this often, idle or busy (the dashboard).
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 10.0, min=0.5)
# A worker that has not written a heartbeat for this long is shown offline.
WORKER_OFFLINE_AFTER_SECONDS = env_float("WORKER_OFFLINE_AFTER_SECONDS", 60.0, min=1.0)
# How long the dashboard waits for the workers to answer Celery's inspect (ping/active/stats).
DASHBOARD_INSPECT_TIMEOUT = env_float("DASHBOARD_INSPECT_TIMEOUT", 1.0, min=0.05, max=10.0)
# -- the nine patches that excite a unit (computed by a worker: webapp/worker/patches.py) ----
# Pictures kept per job (the oldest goes to make room), pictures a person may ask for per hour
# (429 past it), and how long one may wait for a worker before it is asked for again.
PATCHES_PER_JOB = env_int("PATCHES_PER_JOB", 24, min=1)
PATCHES_PER_HOUR = env_int("PATCHES_PER_HOUR", 60, min=1)
PATCHES_WAIT_SECONDS = env_int("PATCHES_WAIT_SECONDS", 120, min=5)

# -- retention (the reconciler's loop; webapp/jobs/retention.py) ----------------------------
# 0 (the default): nothing is ever deleted. Otherwise results, previews, checkpoints and
# visualisations of jobs finished more than RETENTION_DAYS ago are deleted (the job's row
# stays, without them), and files no row refers to, older than RETENTION_ORPHAN_GRACE_SECONDS.
RETENTION_DAYS = env_float("RETENTION_DAYS", 0.0, min=0.0)
RETENTION_ORPHAN_GRACE_SECONDS = env_int("RETENTION_ORPHAN_GRACE_SECONDS", 86_400, min=60)
RETENTION_EVERY_SECONDS = env_int("RETENTION_EVERY_SECONDS", 3600, min=1)  # at most one sweep this often

# /metrics answers staff sessions, and a scraper sending `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env_str("METRICS_TOKEN", None)

# -- Celery (the app itself and its reliability settings are in webapp/celery.py) -----
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "sentinel"))
# Overrides REDIS_URL as the broker; `filesystem://` (a folder under VAR_DIR/broker) runs
# with no server at all, `memory://` only within one process (tests).
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL,
                            schemes=("redis", "rediss", "sentinel", "filesystem", "memory"))
BROKER_DIR = VAR_DIR / "broker"
# Redis hands a message unacknowledged for this long to another worker (webapp/celery.py):
# by default the hard time limit plus 10 minutes, so a running job's message stays put
# (lifecycle.claim() drops a copy that comes back anyway). The fault tests shorten it.
BROKER_VISIBILITY_TIMEOUT = env_int("BROKER_VISIBILITY_TIMEOUT", None, min=1)
# How often a worker looks for messages past the visibility timeout; 0: kombu's default (~100 s).
BROKER_RESTORE_EVERY_SECONDS = env_int("BROKER_RESTORE_EVERY_SECONDS", 0, min=0)
# The reconciler (webapp/jobs/reconcile.py) sends again a job queued for this long whose message
# the broker does not hold; the grace covers a message on its way after a commit.
RECONCILE_GRACE_SECONDS = env_int("RECONCILE_GRACE_SECONDS", 60, min=1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 0, min=0)  # 0 = never

# Live progress (webapp/jobs/live.py): job states pushed through this Redis to the pages' event
# streams and the API's cheap polls. Unset (no REDIS_URL): pages poll, the API reads the rows.
LIVE_UPDATES_URL = env_str("REDIS_URL", None)
# The event stream sends a comment this often while nothing happens (proxies close silent connections).
LIVE_KEEPALIVE_SECONDS = env_float("LIVE_KEEPALIVE_SECONDS", 15.0, min=0.1)
LIVE_WAIT_MAX_SECONDS = 30  # the longest `?wait=` of the API's job state
# A job page's ticket to its event stream is good for this long (a page open longer polls instead).
LIVE_TICKET_SECONDS = env_int("LIVE_TICKET_SECONDS", 12 * 3600, min=60)

# -- REST API (webapp/api) ---------------------------------------------------------------
# The default cache (sessions, through cached_db) and the throttle counters: in Redis when REDIS_URL
# is set (shared by every web process), else per process.
_redis_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                # Short timeouts: with Redis away, a request waits a second at most before it goes on.
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}
CACHES = {
    "default": ({**_redis_cache, "KEY_PREFIX": "cache"} if env_str("REDIS_URL", None)
                else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}),
    "throttle": ({**_redis_cache, "KEY_PREFIX": "throttle"} if env_str("REDIS_URL", None)
                 else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}),
}
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "600/minute")  # per person; DRF's "<n>/<second|minute|hour|day>"
API_BATCH_MAX_JOBS = env_int("API_BATCH_MAX_JOBS", 100, min=1)
# Failed logins per username and per client address within the window, counted in the
# "throttle" cache; past either, a login is refused unchecked (webapp/pages/login_limit.py).
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5, min=1)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20, min=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, min=1)
# The limit's gate first: it refuses before ModelBackend checks a password.
AUTHENTICATION_BACKENDS = ["webapp.pages.login_limit.LoginLimitBackend", "django.contrib.auth.backends.ModelBackend"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.api.tokens.HashedTokenAuthentication",  # first: no credentials → 401, not 403
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["webapp.api.throttling.PersonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"person": API_THROTTLE_RATE},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Style transfer API",
    "DESCRIPTION": "Upload images, run neural style transfer jobs and batches, download the results. "
                   "Use HTTPS: the token is sent with every request.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The cheap job-state poll is a plain async view (webapp/api/live.py): added to the schema here.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "webapp.api.live.add_to_schema"],
}

# -- limits against abuse (README, Security) -------------------------------------------------
# One job's estimated GPU cost, as a multiple of the `quality` preset's own estimate with one
# style (webapp/jobs/cost.py reads the preset from stylize.PRESETS): 4 = up to four of them.
JOB_COST_BUDGET = env_float("JOB_COST_BUDGET", 4.0, min=0.01)
# Each queued or running job a person has beyond this many sends their next one a Redis
# lane later (webapp/jobs/dispatch.py), so one person's jobs cannot starve everyone else's.
QUEUE_SHARE_PER_PERSON = env_int("QUEUE_SHARE_PER_PERSON", 1, min=1)
# Sign-ups from one address within the window (the "throttle" cache); past it, 429.
SIGNUPS_PER_IP = env_int("SIGNUPS_PER_IP", 5, min=1)
SIGNUP_WINDOW_SECONDS = env_int("SIGNUP_WINDOW_SECONDS", 3600, min=1)
# API requests that carry image files (images/, jobs/ with files), per person: each upload is
# decoded and re-encoded, so they get a lower rate than API_THROTTLE_RATE.
API_UPLOAD_THROTTLE_RATE = env_str("API_UPLOAD_THROTTLE_RATE", "120/hour")
# Bytes of uploaded images one person may keep; past it an upload is 413 with the numbers.
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 2 * 1024**3, min=1)
# Idempotency-Key answers are kept this long (pruned by `manage.py prune_idempotency_keys`,
# which the reconciler runs on every pass).
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 86400, min=60)
# Bodies of the login and sign-up forms (pages and admin), any content type: refused with 413
# above this before they are parsed.
AUTH_FORM_MAX_BYTES = env_int("AUTH_FORM_MAX_BYTES", 16 * 1024, min=1024)
# Addresses (or CIDR networks) of the reverse proxies in front of gunicorn. X-Forwarded-For is
# believed only from these; from anyone else REMOTE_ADDR is the client (login and sign-up limits).
TRUSTED_PROXY_ADDRESSES = env_list("TRUSTED_PROXY_ADDRESSES", [])
# API tokens (webapp/api/tokens.py): hashed; each lives until revoked or the expiry its maker chose.
API_TOKENS_PER_PERSON = env_int("API_TOKENS_PER_PERSON", 20, min=1)
REST_KNOX = {"TOKEN_TTL": None, "AUTO_REFRESH": False, "AUTH_HEADER_PREFIX": "Token"}
# /api/schema/ and /api/docs/ need a login unless this is on.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", False)
# Content-Security-Policy of every response (webapp/pages/security_headers.py).
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; form-action 'self'")

# -- HTTPS (off under DEBUG: the local run is plain HTTP on localhost) -----------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # container health checks speak plain HTTP from inside
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, min=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# Only behind a proxy that sets X-Forwarded-Proto itself (and strips the client's):
# otherwise any client could claim its plain-HTTP request is HTTPS.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Sessions read from the cache (Redis with REDIS_URL) and written through to the database: a poll
# does not query the database for its session, and a Redis restart logs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
X_FRAME_OPTIONS = "DENY"

# -- logging ---------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise EnvError(f"environment variable LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                   f"not {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers would print request errors a second time.
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
