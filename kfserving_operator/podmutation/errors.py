"""The one error the pod mutation raises."""

from __future__ import annotations


class PodMutationError(ValueError):
    """The pod cannot be mutated as asked; the admission must be denied with this message.

    The message names the annotation or field at fault and what is allowed, so it can be
    returned to the user as is (for example as the admission response's ``status.message``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
