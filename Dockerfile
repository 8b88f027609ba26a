# trixie: its postgresql-client (17) dumps and restores the compose file's PostgreSQL 16 (manage.py backup).
FROM python:3.11-slim-trixie
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
# The locked runtime set first (its own layer, reused while the lock is unchanged), each file
# checked against its hash; then the project itself without resolving anything.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY mailplatform mailplatform
COPY contacts contacts
COPY media media
COPY templates templates
COPY campaigns campaigns
COPY delivery delivery
COPY automations automations
COPY manage.py ./
RUN pip install --no-deps -e . && DEBUG=true SECRET_KEY=build-only-build-only-build-only-x DATABASE_URL=postgresql://x@localhost/x \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput
RUN useradd --system posthorn && mkdir -p /app/var && chown posthorn /app/var
USER posthorn
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "mailplatform.wsgi:application"]
