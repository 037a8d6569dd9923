"""kfserving-operator: a kopf operator serving InferenceServices the way KFServing does."""

__version__ = "0.1.0"
