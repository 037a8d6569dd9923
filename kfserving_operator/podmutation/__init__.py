"""The pure core of the pod mutating webhook.

No I/O here: the webhook shell reads the pod's ServiceAccount and its Secrets, then calls
:func:`mutate_pod` and answers the AdmissionReview with :func:`pod_patch`. See the module
docs of :mod:`.mutator` (what is injected) and :mod:`.credentials` (which Secret wins).
"""

from kfserving_operator.podmutation.credentials import (
    CredentialSources,
    secret_names_to_fetch,
    service_account_name,
)
from kfserving_operator.podmutation.errors import PodMutationError
from kfserving_operator.podmutation.mutator import (
    MutationResult,
    credentials_needed,
    is_in_scope,
    mutate_pod,
    pod_patch,
)
from kfserving_operator.podmutation.storage_uri import StorageSource, parse_storage_uri

__all__ = [
    "CredentialSources",
    "MutationResult",
    "PodMutationError",
    "StorageSource",
    "credentials_needed",
    "is_in_scope",
    "mutate_pod",
    "parse_storage_uri",
    "pod_patch",
    "secret_names_to_fetch",
    "service_account_name",
]
