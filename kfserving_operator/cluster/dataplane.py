"""The lane's data path: what carries a request from ``cluster predict`` to a model server.

All of it runs as processes in the lane's network namespace, beside the real node:

- **kube-proxy** (iptables mode): Services' cluster IPs work inside the namespace, for the
  ingress (Traefik dials a revision's Service by its cluster IP) and for pods.
- **CoreDNS** with its kubernetes plugin, on the bridge's address: the node's cluster DNS,
  so a transformer reaches ``<predictor>.<namespace>`` by name, as in any cluster.
- **Traefik**, whose Knative provider implements KIngress (class
  :data:`INGRESS_CLASS`): it routes each Knative Service's hosts to its revisions with the
  traffic split Knative computed. Its Kubernetes Ingress provider serves raw deployment
  mode's Ingresses (IngressClass :data:`INGRESS_CLASS_NAME`). Its private entry point, on
  port 80 of the bridge's address, plays Knative's local gateway
  (``<ksvc>.<ns>.svc.cluster.local`` resolves to it); the public one serves the external
  hosts.
- **Knative's activator**: requests for a revision scaled to zero wait in it while the
  autoscaler scales up. It and the autoscaler reach each other, and revisions, by the
  in-cluster names Knative gives them, which only the cluster's DNS can answer: they run in
  a mount namespace of their own whose ``/etc/resolv.conf`` names CoreDNS.

The Services and Endpoints that stand for these processes (their pods in a real cluster)
point at the bridge's address: ``traefik-private``/``traefik-public`` (headless, so DNS
answers with that address), ``activator-service`` and ``autoscaler``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

INGRESS_CLASS = "traefik.ingress.networking.knative.dev"
SYSTEM_NAMESPACE = "knative-serving"
# Ports on the bridge's address (the namespace is the lane's own: nothing else binds it).
PRIVATE_INGRESS_PORT = 80
# Not 8080: the autoscaler listens there on every address.
PUBLIC_INGRESS_PORT = 8000
DNS_PORT = 53
ACTIVATOR_HTTP_PORT = 8012
ACTIVATOR_H2C_PORT = 8013
AUTOSCALER_WEBSOCKET_PORT = 8080
LABELS = {"app.kubernetes.io/part-of": "kfserving-operator-dev"}


def _service(name: str, ports: list[dict[str, Any]], *, headless: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": LABELS},
            "spec": spec}


def _endpoints(name: str, address: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": LABELS},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": p["name"], "port": p.get("targetPort", p["port"]),
                                    "protocol": "TCP"} for p in ports]}]}


def standing_objects(address: str) -> list[dict[str, Any]]:
    """Services and Endpoints for the lane's processes, all at ``address``."""
    objects: list[dict[str, Any]] = []
    private = [{"name": "http2", "port": PRIVATE_INGRESS_PORT}]
    public = [{"name": "http2", "port": PUBLIC_INGRESS_PORT}]
    activator = [{"name": "http", "port": 80, "targetPort": ACTIVATOR_HTTP_PORT},
                 {"name": "http2", "port": 81, "targetPort": ACTIVATOR_H2C_PORT}]
    autoscaler = [{"name": "http", "port": AUTOSCALER_WEBSOCKET_PORT}]
    for name, ports, headless in (("traefik-private", private, True),
                                  ("traefik-public", public, True),
                                  ("activator-service", activator, False),
                                  ("autoscaler", autoscaler, False)):
        objects.append(_service(name, ports, headless=headless))
        objects.append(_endpoints(name, address, ports))
    return objects


def ingress_rbac() -> list[dict[str, Any]]:
    """Traefik's identity: a ServiceAccount (its token is how Traefik authenticates) with
    what its Knative provider reads and writes."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "traefik", "namespace": SYSTEM_NAMESPACE, "labels": LABELS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "kfserving-lane-traefik", "labels": LABELS},
         "rules": [
             {"apiGroups": [""], "resources": ["services", "endpoints", "secrets", "nodes"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["networking.internal.knative.dev"],
              "resources": ["ingresses", "ingresses/status"],
              "verbs": ["get", "list", "watch", "update", "patch"]},
             # Raw deployment mode's Ingresses (the lane's config names this class).
             {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
              "verbs": ["update", "patch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "kfserving-lane-traefik", "labels": LABELS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "kfserving-lane-traefik"},
         "subjects": [{"kind": "ServiceAccount", "name": "traefik",
                       "namespace": SYSTEM_NAMESPACE}]},
    ]


# The IngressClass of raw deployment mode's Ingresses on the lane, served by Traefik's
# Kubernetes Ingress provider (the controller name is Traefik's).
INGRESS_CLASS_NAME = "traefik"


def ingress_class() -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS_NAME, "labels": LABELS},
            "spec": {"controller": "traefik.io/ingress-controller"}}


def corefile(kubeconfig: Path, address: str, cluster_domain: str) -> str:
    """CoreDNS answers for the cluster domain only; other names fail at once (no network)."""
    return f"""{cluster_domain}:{DNS_PORT} in-addr.arpa:{DNS_PORT} {{
    bind {address}
    errors
    kubernetes {cluster_domain} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
}}
.:{DNS_PORT} {{
    bind {address}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def traefik_config(*, api_url: str, token: str, ca_file: Path, address: str) -> dict[str, Any]:
    """Traefik's static configuration (a file: it holds the ServiceAccount token)."""
    return {
        "entryPoints": {
            "web-internal": {"address": f"{address}:{PRIVATE_INGRESS_PORT}"},
            "web": {"address": f"{address}:{PUBLIC_INGRESS_PORT}"},
        },
        "experimental": {"knative": True},
        "providers": {
            # Traefik marks a KIngress ready when it has read it, then applies the routes
            # after this throttle (2 s by default): answering at once keeps Ready truthful.
            "providersThrottleDuration": "0s",
            "knative": {
                "endpoint": api_url,
                "token": token,
                "certAuthFilePath": str(ca_file),
                "publicEntrypoints": ["web"],
                "privateEntrypoints": ["web-internal"],
                "publicService": {"name": "traefik-public", "namespace": SYSTEM_NAMESPACE},
                "privateService": {"name": "traefik-private", "namespace": SYSTEM_NAMESPACE},
                "throttleDuration": "0s",
            },
            # Raw deployment mode's networking.k8s.io/v1 Ingresses, on both entry points.
            "kubernetesIngress": {
                "endpoint": api_url,
                "token": token,
                "certAuthFilePath": str(ca_file),
                "throttleDuration": "0s",
            },
        },
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO"},
    }


def kube_proxy_args(*, kubeconfig: Path, node_name: str, pod_subnet: str,
                    free_port: Callable[[], int]) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        "--proxy-mode=iptables",
        f"--cluster-cidr={pod_subnet}",
        f"--metrics-bind-address=127.0.0.1:{free_port()}",
        f"--healthz-bind-address=127.0.0.1:{free_port()}",
        # conntrack sysctls are the host's business, not the lane's.
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0s",
        "--conntrack-tcp-timeout-close-wait=0s",
        "--iptables-localhost-nodeports=false",
        "--v=1",
    ]


def cluster_dns_wrapper(resolv_conf: Path) -> list[str]:
    """What runs a lane process with the cluster's DNS, ``resolv_conf`` as /etc/resolv.conf.

    Knative's autoscaler and activator reach each other and revisions by in-cluster names
    (``autoscaler.knative-serving.svc.cluster.local``, ``<revision>.<ns>.svc...``), as pods
    do. ``unshare --mount`` gives the process a private copy of the mount table
    (propagation private), so the bind mount is seen by it alone; its argv follows.
    """
    script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "cluster-dns", str(resolv_conf)]


def resolv_conf(address: str, cluster_domain: str) -> str:
    """The cluster DNS only, searched as a pod in knative-serving would."""
    search = f"{SYSTEM_NAMESPACE}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}"
    return f"nameserver {address}\nsearch {search}\noptions ndots:5\n"
