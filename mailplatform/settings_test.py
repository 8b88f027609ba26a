"""Settings for the test suite: the same as production's, on a Redis database of its own."""

import os

# Set before the main settings read them: tests never share Redis keys with `make run`.
os.environ.setdefault("REDIS_EMBEDDED_DB", "1")
os.environ.setdefault("CACHE_KEY_PREFIX", "posthorn-test")
# The suite runs on a developer's checkout, as `make run` does (a generated SECRET_KEY in var/,
# static files from the app folders); pytest-django still runs each test with DEBUG off.
os.environ.setdefault("DEBUG", "true")

from mailplatform.settings import *  # noqa: E402,F403

# A fast hasher: logins in browser journeys and fixtures would otherwise dominate the suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True
# Uploaded media of test runs stays apart from `make run`'s library.
if MEDIA_STORAGE == "filesystem":  # noqa: F405
    STORAGES["media"]["OPTIONS"]["location"] = VAR_DIR / "test-media"  # noqa: F405
# Tests reuse ids across test databases: no worker or test may keep another test's schedules or pauses.
os.environ.setdefault("DELIVERY_GATE_CACHE_SECONDS", "0")
DELIVERY_GATE_CACHE_SECONDS = float(os.environ["DELIVERY_GATE_CACHE_SECONDS"])
