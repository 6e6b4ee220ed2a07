"""Settings, read from the environment (django-environ) with safe defaults for standalone mode."""

import os
import warnings
from pathlib import Path

import environ

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
    "dice_console",
    "apps.projects",
    "apps.clusters",
    "apps.deploy",
    "apps.pipelines",
    "apps.cmdb",
    "apps.logs",
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
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
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
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    # kombu's memory transport, with consumers woken by each message instead of polling
    # (dice_console/broker.py): a pipeline step's end reaches its successors through three hops.
    CELERY_BROKER_URL = "dice-memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
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
}
# Days a finished task run's log is kept (0: forever).
DICE_LOG_RETENTION_DAYS = env.int("DICE_LOG_RETENTION_DAYS", default=30)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env.bool("DICE_CELERY_EAGER", default=False)

# Deployments: the local cluster's state, release files (bundles, checkouts), rollout limits (seconds).
DICE_LOCAL_ROOT = Path(env.str("DICE_LOCAL_ROOT", default=str(DATA_DIR / "local")))
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
    "DESCRIPTION": "Organizations, projects, applications, releases, deployments and pipelines.",
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
