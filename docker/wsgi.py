"""The web container's WSGI application: Django, with WhiteNoise serving the static files.

collectstatic runs when the image is built (Dockerfile) and puts them in STATIC_ROOT;
WhiteNoise answers /static/... from there, with compression and caching headers, before
a request reaches Django. Uploads and results are not static files: Django's own views
serve those (they check who is asking).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.conf import settings  # noqa: E402 (after DJANGO_SETTINGS_MODULE is set)
from django.core.wsgi import get_wsgi_application  # noqa: E402
from whitenoise import WhiteNoise  # noqa: E402

application = WhiteNoise(get_wsgi_application(), root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
