"""Error reports that show no credential: every *_URL, *_KEY(S), *_SECRET, *_PASSWORD setting is hidden.

Django's own filter hides names containing KEY, SECRET, PASS, TOKEN and the like, but not URLs,
and DATABASE_URL, REDIS_URL and the Celery and cache settings built from them carry passwords.
Any other value that looks like a URL with a password in it is masked as well.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

_URL_WITH_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]*:[^/@\s]*@)", re.I)


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL$|_URL|LOCATION|BACKEND|BROKER|DATABASE",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str) and _URL_WITH_PASSWORD.search(cleansed):
            return self.cleansed_substitute
        return cleansed
