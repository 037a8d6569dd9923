# The kfserving-operator image: the Python package in a virtualenv on python:3.11-slim, run as
# a non-root user.
#
#   docker build -t kfserving-operator:0.1.0 .
#   hack/build-image.sh        # the same Dockerfile with buildah, without Docker or a registry
#
# BASE_IMAGE may name any Debian-like image with python3 (3.11) and its venv module;
# hack/build-image.sh passes one it made with debootstrap when no registry can be reached.
#
# Every dependency comes from requirements.lock, pinned with hashes (`make lock` regenerates
# it from pyproject.toml), so two builds of one commit install the same files.
#
# The manifests (manifests/kustomize, manifests/helm) run it with a read-only root filesystem
# and an emptyDir on /tmp, where the operator keeps its webhook certificate files.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/kfserving-operator \
    PATH=/opt/kfserving-operator/bin:$PATH

# A virtualenv: Debian's own python3 refuses system-wide pip installs (PEP 668), and it keeps
# the operator's packages apart from the base image's. The dependencies are installed from the
# hashed lock first (pip refuses any file whose hash differs); then the project itself, with
# no dependency resolution and the locked setuptools as its build backend. Only the installed
# packages stay behind.
COPY requirements.lock pyproject.toml README.md /tmp/src/
COPY kfserving_operator /tmp/src/kfserving_operator
RUN python3 -m venv "$VIRTUAL_ENV" \
 && pip install --require-hashes --no-deps -r /tmp/src/requirements.lock \
 && pip install --no-deps --no-build-isolation /tmp/src \
 && pip check \
 && rm -rf /tmp/src

# A fixed numeric UID/GID, so the pod's runAsNonRoot check can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 kfserving \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kfserving
USER 10001:10001
WORKDIR /tmp

# 9443: admission webhooks (behind Service kfserving-webhook-server-service:443).
# 8080: /healthz (liveness), /readyz (readiness) and /metrics (--health-port).
EXPOSE 9443 8080

ENTRYPOINT ["kfserving-operator", "run", "--webhooks", "cluster"]
