"""The operator's Prometheus metrics as tests read them: scraped, parsed, summed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.replicas import http_get

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus exposition, by name and sorted labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    code, text = http_get(port, "/metrics")
    assert code == 200
    return parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample of ``name`` with exactly ``labels`` (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= set(have))
