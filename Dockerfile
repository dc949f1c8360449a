# syntax=docker/dockerfile:1
# The attestream image: every process of the product (`attestream detect`, `ledger run`,
# `anchor run`, `forensic watch`, `serve`) is this image with other arguments.
# Build: docker build -t attestream:0.1.0 .   (docs/operations.md, "The container image")

# --- build: the locked Python packages into a venv ------------------------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/attestream
# Every package at the version and hash requirements.txt pins, nothing else (--no-deps): the
# same tree as `make setup` installs (docs/operations.md, "Dependencies").
COPY requirements.txt /src/requirements.txt
RUN /opt/attestream/bin/pip install --require-hashes --no-deps -r /src/requirements.txt
# The project itself, built by the locked setuptools (no unpinned build environment).
COPY pyproject.toml README.md /src/
COPY attestcore /src/attestcore
COPY attestream /src/attestream
COPY streams /src/streams
COPY detectors /src/detectors
COPY ledger /src/ledger
COPY anchoring /src/anchoring
COPY forensics /src/forensics
RUN /opt/attestream/bin/pip install --no-deps --no-build-isolation /src \
    && /opt/attestream/bin/pip check

# --- runtime: the venv, a non-root user, nothing to build with ------------------------------
FROM python:3.11-slim-bookworm
# XGBoost's wheel links OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 attestream \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/attestream \
        --create-home --shell /usr/sbin/nologin attestream
COPY --from=build /opt/attestream /opt/attestream
ENV PATH=/opt/attestream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ATTESTREAM_HOME=/var/lib/attestream \
    ATTESTREAM_METRICS_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/attestream
# serve; the detect, ledger and anchor metrics.
EXPOSE 8080 9464 9465 9466
ENTRYPOINT ["attestream"]
CMD ["--help"]
