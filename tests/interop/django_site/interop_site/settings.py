"""Settings of the interop test site (dasf-broker-django behind daphne).

Only what dasf-broker-django needs: auth + django-guardian for the per-topic
permissions, rest_framework's token model for ``Authorization: Token …``
headers, channels with the in-memory layer (one daphne process) or, when
``INTEROP_CHANNEL_REDIS`` names a Redis URL, channels_redis (several daphne
processes of one site), SQLite.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A throw-away site bound to 127.0.0.1: the key only has to exist.
SECRET_KEY = "interop-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "guardian",
    "rest_framework",
    "rest_framework.authtoken",
    "channels",
    "dasf_broker",
    "interop_site",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]

ROOT_URLCONF = "interop_site.urls"
ASGI_APPLICATION = "interop_site.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        # daphne serves consumers from threads; wait for SQLite's lock.
        "OPTIONS": {"timeout": 30},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 10_000},
    }
}
if os.environ.get("INTEROP_CHANNEL_REDIS"):
    # several daphne processes of this site share one Redis channel layer
    CHANNEL_LAYERS["default"] = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels_redis blocks 5 s in BZPOPMIN; redis-py 8 gives up
            # reading after its socket timeout (5 s): a longer one keeps an
            # idle receive from failing the consumer (daphne closes 1011)
            "hosts": [
                {"address": os.environ["INTEROP_CHANNEL_REDIS"], "socket_timeout": 30}
            ],
            "prefix": os.environ.get("INTEROP_CHANNEL_PREFIX", "asgi"),
            "capacity": 10_000,
            "expiry": 60,
        },
    }
    # several processes write the one SQLite file: transactions take the
    # write lock at BEGIN (a deferred one that must upgrade its lock fails
    # at once with "database is locked", whatever the timeout), and WAL
    # lets readers go on meanwhile
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
