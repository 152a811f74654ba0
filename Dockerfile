# syntax=docker/dockerfile:1
# Multi-stage: dependencies are installed from the hashed lock file in a throw-away stage; the runtime
# image holds only the virtualenv, the migrations and an unprivileged user (uid 10001). Voice needs
# libopus (bundled in the PyAV wheel, which bot/audio/opus.py loads), PyNaCl and davey (wheels): no
# system packages beyond the base image.
#
#   docker build -t interpreter .
#   docker run -d --name interpreter --env-file .env -v interpreter-data:/app/data -p 8080:8080 interpreter
#
# The SQLite database lives in the /app/data volume (owned by uid 10001; a bind-mounted host directory
# must be writable by that uid: `sudo chown 10001 ./data`). DATABASE_URL may point at PostgreSQL instead.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-deps .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/bot.db HTTP_PORT=8080
RUN useradd --create-home --uid 10001 bot && mkdir -p /app/data && chown bot /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=bot alembic.ini ./
COPY --chown=bot migrations ./migrations
USER bot
VOLUME ["/app/data"]
EXPOSE 8080
# /healthz answers 200 once the main bot is connected to Discord (503 before). The start period covers
# the migration and the login (the bot gives up on a login after 60 s and exits).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 CMD python -c "import os,urllib.request; p=os.environ.get('HTTP_PORT','8080'); p=='0' or urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"
CMD ["python", "-m", "bot", "run"]
