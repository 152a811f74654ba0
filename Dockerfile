# syntax=docker/dockerfile:1
# Multi-stage: dependencies are built in a throw-away stage; the runtime image holds only the virtualenv
# and the source, and runs as an unprivileged user. Voice needs libopus (bundled in the PyAV wheel,
# which bot/audio/opus.py loads), PyNaCl and davey (wheels) — no system packages beyond the base image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --upgrade pip && pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --create-home --uid 10001 bot && mkdir -p /app/data && chown bot /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=bot alembic.ini ./
COPY --chown=bot migrations ./migrations
USER bot
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import os,urllib.request; p=os.environ.get('HTTP_PORT','8080'); p=='0' or urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"
CMD ["python", "-m", "bot", "run"]
