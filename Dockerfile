# Images of the pipeline, one Dockerfile, several targets:
#   docker build --target producer -t coinbase-pipeline/producer .   (make build-producer)
#   docker build --target consumer -t coinbase-pipeline/consumer .   (make build-consumer)
#   docker build --target analysis -t coinbase-pipeline/analysis .   (make build-analysis)
#   docker build --target repair -t coinbase-pipeline/repair .       (make build-repair)
# `base` runs the topic job and the simulator in compose. Each image carries shared/, its own
# package and only its own dependencies (its extra of pyproject.toml, locked with hashes in
# requirements-<extra>.lock by `make lock`). No secret is baked in: every setting comes from
# the environment at run time. `make test-containers` builds them all and runs them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- dependencies, one venv an image
FROM ${PYTHON_IMAGE} AS pip
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
# Every hash checked; --no-deps: the lock is the whole closure, pip check proves it.

FROM pip AS deps-producer
COPY requirements-producer.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-producer.lock \
 && /opt/venv/bin/pip check

FROM pip AS deps-consumer
COPY requirements-consumer.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-consumer.lock \
 && /opt/venv/bin/pip check

FROM pip AS deps-analysis
COPY requirements-analysis.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-analysis.lock \
 && /opt/venv/bin/pip check

FROM pip AS deps-repair
COPY requirements-repair.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-repair.lock \
 && /opt/venv/bin/pip check

FROM pip AS deps-tools
COPY requirements-tools.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-tools.lock \
 && /opt/venv/bin/pip check

# ---------------------------------------------------------------- shared code, non-root user
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
WORKDIR /app
COPY shared/ shared/
# Root owns the code; the app user can read it and write nothing (read-only root file
# systems work as they are).
USER 10001:10001
# The services stop cleanly on SIGTERM (flush / finish the batch, commit, exit 0); the
# exec-form CMD makes Python PID 1, so the signal reaches it directly.
STOPSIGNAL SIGTERM

# ---------------------------------------------------------------- base: topics job, simulator
FROM runtime AS base
COPY --from=deps-tools /opt/venv /opt/venv
COPY simulator/ simulator/
COPY schema.sql ./

# ---------------------------------------------------------------- producer
FROM runtime AS producer
COPY --from=deps-producer /opt/venv /opt/venv
COPY producer/ producer/
ENV PRODUCER_METRICS_PORT=9101
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PRODUCER_METRICS_PORT', '9101'), timeout=4)"]
CMD ["python", "-m", "producer"]

# ---------------------------------------------------------------- consumer
FROM runtime AS consumer
COPY --from=deps-consumer /opt/venv /opt/venv
COPY consumer/ consumer/
ENV CONSUMER_METRICS_PORT=9102
EXPOSE 9102
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONSUMER_METRICS_PORT', '9102'), timeout=4)"]
CMD ["python", "-m", "consumer"]

# ---------------------------------------------------------------- analysis (HTTP API and chart page)
# Read-only: run it as MYSQL_USER=ticker_reader (SELECT only, created by schema.sql).
FROM runtime AS analysis
COPY --from=deps-analysis /opt/venv /opt/venv
COPY analysis/ analysis/
ENV ANALYSIS_PORT=8000 \
    MYSQL_USER=ticker_reader
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ANALYSIS_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "analysis"]

# ---------------------------------------------------------------- repair (trade tape gap repair)
# Reads `trade` as ticker_reader (SELECT only); publishes what it fetches to the trades topic.
FROM runtime AS repair
COPY --from=deps-repair /opt/venv /opt/venv
COPY repair/ repair/
ENV REPAIR_METRICS_PORT=9103 \
    MYSQL_USER=ticker_reader
EXPOSE 9103
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('REPAIR_METRICS_PORT', '9103'), timeout=4)"]
CMD ["python", "-m", "repair", "--follow"]
