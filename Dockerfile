# The kfserving-operator image: the Python package on python:3.11-slim, run as a non-root user.
#
#   docker build -t kfserving-operator:0.1.0 .
#
# The manifests (manifests/kustomize, manifests/helm) run it with a read-only root filesystem
# and an emptyDir on /tmp, where the operator keeps its webhook certificate files.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install from a throw-away copy of the source; only the installed package stays behind.
COPY pyproject.toml README.md /tmp/src/
COPY kfserving_operator /tmp/src/kfserving_operator
RUN pip install /tmp/src && rm -rf /tmp/src

# A fixed numeric UID/GID, so the pod's runAsNonRoot check can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 kfserving \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kfserving
USER 10001:10001
WORKDIR /tmp

# 9443: admission webhooks (behind Service kfserving-webhook-server-service:443).
# 8080: kopf liveness endpoint, when KFSERVING_LIVENESS=http://0.0.0.0:8080/healthz is set.
EXPOSE 9443 8080

ENTRYPOINT ["kfserving-operator", "run", "--webhooks", "cluster"]
