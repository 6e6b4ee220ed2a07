"""Settings, read from the environment (django-environ) with safe defaults for standalone mode."""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF

# WhiteNoise streams files with a sync iterator; under ASGI Django warns on every static file.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DICE_DEBUG", default=False)
# Standalone mode generates and keeps a key in var/; production must set DICE_SECRET_KEY.
DATA_DIR = Path(env.str("DICE_DATA_DIR", default=str(BASE_DIR / "var")))


def _secret_key() -> str:
    key = env.str("DICE_SECRET_KEY", default="")
    if key:
        return key
    import secrets

    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DICE_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DICE_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "django_celery_beat",
    "channels",
    "axes",
    "dice_console",
    "apps.projects",
    "apps.clusters",
    "apps.deploy",
    "apps.pipelines",
    "apps.cmdb",
    "apps.logs",
    "apps.monitoring",
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
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: refuses locked-out sign-ins (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dice_console.urls"
ASGI_APPLICATION = "dice_console.asgi.application"

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
                "dice_console.security.csp_nonce",
            ],
            "builtins": ["dice_console.templatetags.dice_format"],
        },
    },
]

# Database: PostgreSQL from DATABASE_URL in production, SQLite in WAL mode otherwise.
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    # Requests close their connection (see dice_console/dbconn.py); worker threads keep theirs.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DICE_DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # DICE_DB_POOL=N (web processes): connections come from a pool of at most N (psycopg_pool,
    # Django's "pool" option) and go back to it when a request ends, instead of a new PostgreSQL
    # backend per request (bench/bench_web.py: PostgreSQL spent 0.57 of a core forking backends).
    _pool = os.environ.get("DICE_DB_POOL", "").strip()
    if _pool:
        if not _pool.isdigit() or int(_pool) > 1000:
            raise environ.ImproperlyConfigured(f"DICE_DB_POOL must be a number of connections from 0 to 1000, not {_pool!r}")
        if int(_pool):
            DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them, not the thread
            DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": int(_pool),
                                                                    "timeout": 30}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "dice.sqlite3",
            "OPTIONS": {
                # WAL lets the web server and the embedded worker read while one writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Requests close their connection (see dice_console/dbconn.py); worker threads keep theirs.
            "CONN_MAX_AGE": env.int("DICE_DB_CONN_MAX_AGE", default=0),
            "CONN_HEALTH_CHECKS": True,
            # Tests use a file too: an in-memory database shares one cache whose table locks fail
            # at once ("database table is locked") instead of waiting like the console's file does.
            # One file per test process: two pytest sessions on one checkout must not share it.
            "TEST": {"NAME": str(DATA_DIR / f"test_dice_{os.getpid()}.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---- sign-in ------------------------------------------------------------------------------------
# django-axes throttles password sign-ins (login page and admin) by user and by address, separately:
# DICE_LOGIN_FAILURE_LIMIT failures in a row lock that username, or that address, for
# DICE_LOGIN_COOLOFF_MINUTES. Locked-out attempts are refused before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "dice_console.security.SignInThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("DICE_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("DICE_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "dice_console.security.client_ip"
AXES_VERBOSE = False
# Behind N reverse proxies that append to X-Forwarded-For, the client is the Nth address from the end.
DICE_TRUSTED_PROXY_COUNT = env.int("DICE_TRUSTED_PROXY_COUNT", default=0)
# Password checks (PBKDF2, ~0.1-0.3 s of CPU each) run on this many threads of their own, so that a
# burst of sign-ins never holds the thread that serves every other synchronous request.
DICE_LOGIN_THREADS = env.int("DICE_LOGIN_THREADS", default=2)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Who may create organizations: "staff" (superusers) or "anyone" signed in (self-service).
DICE_ORG_CREATION = env.str("DICE_ORG_CREATION", default="staff")
if DICE_ORG_CREATION not in ("staff", "anyone"):
    raise environ.ImproperlyConfigured(f"DICE_ORG_CREATION must be 'staff' or 'anyone', not {DICE_ORG_CREATION!r}")
# ---- TLS deployments ------------------------------------------------------------------------------
# DICE_TLS=true (the console is reached over https) turns on secure cookies, HSTS and the redirect to
# https; each can also be set alone. Behind a TLS-terminating proxy, name the header it sets:
# DICE_PROXY_TLS_HEADER=X-Forwarded-Proto (only when the proxy always sets or overwrites it).
DICE_TLS = env.bool("DICE_TLS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DICE_SECURE_COOKIES", default=DICE_TLS)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("DICE_HSTS_SECONDS", default=31536000 if DICE_TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DICE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DICE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("DICE_SSL_REDIRECT", default=DICE_TLS)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]  # probes speak plain http inside the cluster
_proxy_header = env.str("DICE_PROXY_TLS_HEADER", default="")
SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts and styles from the console itself, or inline ones
# carrying the request's nonce; style attributes are allowed (they cannot run code). WebSockets
# connect to the same origin. DICE_CSP_REPORT_ONLY=true sends it as Content-Security-Policy-Report-Only.
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if env.bool("DICE_CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# dice_console/formats/en: one date and time format everywhere, with the zone.
FORMAT_MODULE_PATH = ["dice_console.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic target for production (set DICE_STATIC_ROOT); standalone serves from the finders.
STATIC_ROOT = env.str("DICE_STATIC_ROOT", default="") or None
# Serve static files from the apps and static/ directly, so standalone mode needs no collectstatic.
WHITENOISE_USE_FINDERS = env.bool("DICE_STATIC_FROM_FINDERS", default=True)

# Broker and channel layer: Redis in production, in-process otherwise.
REDIS_URL = env.str("REDIS_URL", default="")
STANDALONE = not REDIS_URL
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # redis-py 8 reads with a 5 s socket timeout by default, and channels_redis waits for a
    # consumer's next message with a BZPOPMIN of 5 s: on a socket idle that long the two raced and
    # the read's timeout killed the consumer (every /ws/ socket died after ~5 s without a message).
    # The socket timeout is set above the blocking wait.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]}}
    }
    # Redis hands a message that was taken but not acknowledged to another consumer after this many
    # seconds. No task here runs that long (a rollout is followed by a thread of the worker, steps
    # run on the cluster), so only a worker that died holding messages is affected: they come back
    # after this delay, while the reconcilers at the next worker's start have already resumed the work.
    # DICE_BROKER_TRANSPORT_OPTIONS: more of kombu's Redis options as JSON (the tests make it look
    # for such messages every second: {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("DICE_BROKER_VISIBILITY_TIMEOUT", default=3600),
                                       **env.json("DICE_BROKER_TRANSPORT_OPTIONS", default={})}
else:
    # kombu's memory transport, with consumers woken by each message instead of polling
    # (dice_console/broker.py): a pipeline step's end reaches its successors through three hops.
    CELERY_BROKER_URL = "dice-memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A message is acknowledged when its task has run, so a worker killed mid-task loses nothing; every
# task is idempotent, so one delivered again does no harm.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# `celery worker` runs tasks in threads of one process: the local cluster is supervised by one
# process per state root (apps/clusters/supervision.py), and a prefork child could not act on it.
CELERY_WORKER_POOL = env.str("DICE_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("DICE_WORKER_CONCURRENCY", default=8)
# Celery closes the thread's database connection around every task unless told to reuse it;
# reconnecting cost more than a pipeline step's dispatch. Broken connections are dropped after
# each task (dice_console/dbconn.py), and Celery still closes them every 2 x this many tasks.
CELERY_DB_REUSE_MAX = env.int("DICE_CELERY_DB_REUSE_MAX", default=1000)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fixed periodic work (django-celery-beat copies these into its tables at start).
CELERY_BEAT_SCHEDULE = {
    # Re-adopt running pipeline steps and collect finished ones after a worker or console restart.
    "pipelines-reconcile": {"task": "dice.pipelines.reconcile", "schedule": 60.0},
    # Drop task-run logs older than DICE_LOG_RETENTION_DAYS.
    "logs-expire": {"task": "dice.logs.expire", "schedule": 3600.0},
    # Tear down merge requests' preview environments past their expiry.
    "previews-expire": {"task": "dice.pipelines.expire_previews", "schedule": 900.0},
    # Tear down pushed branches' runtimes past their project's branch_runtime_days (unset: never).
    "branch-runtimes-expire": {"task": "dice.pipelines.expire_branch_runtimes", "schedule": 900.0},
    # Send notifications whose attempt is due (a retry, a lost message, a worker that died mid-send).
    "monitoring-notify-sweep": {"task": "dice.monitoring.sweep", "schedule": 60.0},
    # Measure every deployed runtime (CPU, memory, restarts) through its cluster's engine.
    "monitoring-collect": {"task": "dice.monitoring.collect",
                           "schedule": env.float("DICE_METRICS_INTERVAL", default=30.0)},
    # Submit the runs of dice.yml jobs on a data engine (`engine: spark`) whose `schedule` came due.
    "engine-schedules": {"task": "dice.clusters.fire_engine_schedules",
                         "schedule": env.float("DICE_ENGINE_SCHEDULE_INTERVAL", default=20.0)},
    # Five-minute averages and retention of what was measured.
    "monitoring-rollup": {"task": "dice.monitoring.rollup", "schedule": 300.0},
}
# Seconds between measurements; hours raw samples are kept; days the five-minute averages are kept.
DICE_METRICS_INTERVAL = env.float("DICE_METRICS_INTERVAL", default=30.0)
DICE_METRICS_RAW_HOURS = env.float("DICE_METRICS_RAW_HOURS", default=25.0)
DICE_METRICS_RETENTION_DAYS = env.float("DICE_METRICS_RETENTION_DAYS", default=7.0)
# The graphs refresh when a collection pushes its new samples; they also look again this often
# (seconds) in case a push was lost (0: never).
DICE_METRICS_FALLBACK_POLL = env.float("DICE_METRICS_FALLBACK_POLL", default=300.0)
# Days a finished task run's log is kept (0: forever).
DICE_LOG_RETENTION_DAYS = env.int("DICE_LOG_RETENTION_DAYS", default=30)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env.bool("DICE_CELERY_EAGER", default=False)

# Deployments: the local cluster's state, release files (bundles, checkouts), rollout limits (seconds).
DICE_LOCAL_ROOT = Path(env.str("DICE_LOCAL_ROOT", default=str(DATA_DIR / "local")))
# The managed local Spark cluster (`spark-local`): its worker's cores and memory (MiB) for executors
# and cluster-mode drivers; master and worker daemons take ~256 MiB of heap each besides.
DICE_SPARK_WORKER_CORES = env.int("DICE_SPARK_WORKER_CORES", default=2)
DICE_SPARK_WORKER_MEMORY = env.int("DICE_SPARK_WORKER_MEMORY", default=768)
# Pipelines (README "Pipelines"): limits and the dispatch's batch sizes.
DICE_PIPELINE_MAX_RUNS_PER_PROJECT = env.int("DICE_PIPELINE_MAX_RUNS_PER_PROJECT", default=5)
DICE_PIPELINE_MAX_PARALLEL_STEPS = env.int("DICE_PIPELINE_MAX_PARALLEL_STEPS", default=200)
DICE_PIPELINE_START_BATCH = env.int("DICE_PIPELINE_START_BATCH", default=100)
DICE_PIPELINE_LAUNCH_THREADS = env.int("DICE_PIPELINE_LAUNCH_THREADS", default=8)
DICE_PIPELINE_NOTIFY_PORT = env.int("DICE_PIPELINE_NOTIFY_PORT", default=0)
DICE_DEPLOY_FILES = Path(env.str("DICE_DEPLOY_FILES", default=str(DATA_DIR / "deploy")))
DICE_DEPLOY_TIMEOUT = env.int("DICE_DEPLOY_TIMEOUT", default=300)
DICE_DEPLOY_TIMEOUT_MAX = env.int("DICE_DEPLOY_TIMEOUT_MAX", default=1800)
DICE_DEPLOY_DEGRADED_GRACE = env.int("DICE_DEPLOY_DEGRADED_GRACE", default=60)
DICE_DEPLOY_POLL_INTERVAL = env.float("DICE_DEPLOY_POLL_INTERVAL", default=1.0)  # kinds without watch_status
DICE_DEPLOY_RECHECK_INTERVAL = env.float("DICE_DEPLOY_RECHECK_INTERVAL", default=5.0)

# Notifications (README "Notifications"): channel URLs on loopback, link-local (cloud metadata) and
# private addresses are refused unless DICE_NOTIFY_ALLOW_PRIVATE_HOSTS; one attempt's timeout, and the
# delays before each retry (seconds; after the last, a delivery is failed).
DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = env.bool("DICE_NOTIFY_ALLOW_PRIVATE_HOSTS", default=False)
DICE_NOTIFY_TIMEOUT = env.float("DICE_NOTIFY_TIMEOUT", default=10.0)
DICE_NOTIFY_RETRY_DELAYS = [float(d) for d in env.list("DICE_NOTIFY_RETRY_DELAYS", default=["10", "60", "300", "1800"])]
# E-mail notifications go through Django's mail backend: SMTP when DICE_EMAIL_HOST is set, else the console log.
EMAIL_BACKEND = env.str("DICE_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend"
                        if env.str("DICE_EMAIL_HOST", default="") else "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("DICE_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DICE_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("DICE_EMAIL_USER", default="")
EMAIL_HOST_PASSWORD = env.str("DICE_EMAIL_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("DICE_EMAIL_TLS", default=False)
EMAIL_TIMEOUT = env.int("DICE_EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DICE_EMAIL_FROM", default="dice@localhost")

# The most results one API page gives (`limit` above it is a 400 naming `limit`).
DICE_API_MAX_PAGE_SIZE = env.int("DICE_API_MAX_PAGE_SIZE", default=1000)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.projects.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["dice_console.api_input.FilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "dice_console.api_input.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "dice_console.api_input.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "dice_console.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dice_console.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dice Console API",
    "DESCRIPTION": (
        "Organizations, projects, applications, releases, deployments and pipelines.\n\n"
        "**Authentication**: send an API token as `Authorization: Bearer <token>` (make one on the "
        "console's API tokens page, with `dice token create NAME`, or `POST /api/tokens/`; the key is "
        "shown once and stored hashed). A browser session works too (unsafe methods then need the "
        "CSRF token). Every object outside your organizations answers 404. `GET /api/` lists every "
        "endpoint."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

DJANGO_TABLES2_TEMPLATE = "dice/table.html"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DICE_LOG_LEVEL", default="WARNING")},
    # The in-memory broker has no hostname and kombu warns about it at every connection.
    "loggers": {"kombu.connection": {"level": "ERROR"}},
}
