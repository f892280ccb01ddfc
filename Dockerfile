# The service's one image: the web server (the default command) and the GPU worker
# (docker-compose.yml gives it its command). Nothing secret is in it: SECRET_KEY and
# the passwords come from the environment when a container starts.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media

WORKDIR /app

# Dependencies first, so this layer (torch from PyPI with its CUDA libraries: several GB)
# is built again only when a requirements file changes. torch is pinned by requirements.txt.
COPY requirements.txt ./
COPY docker/requirements.txt docker/requirements.txt
RUN pip install -r requirements.txt -r docker/requirements.txt

COPY . .

# Static files are collected into the image (webapp/asgi.py serves them with ServeStatic).
# DEBUG=1 for this one command only: the settings then need no SECRET_KEY, and none is baked in.
RUN DEBUG=1 python manage.py collectstatic --noinput \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/var /data/media \
    && chown app:app /app/var /data/media

# The code stays root's (read-only to the service); the service writes only VAR_DIR and MEDIA_ROOT,
# and a new named volume mounted on /data/media starts out owned by `app`.
USER app

EXPOSE 8000
CMD ["gunicorn", "--config", "docker/gunicorn.conf.py"]
