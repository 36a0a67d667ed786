"""Reading a daemon's Prometheus metrics in tests (the one copy)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def metric_total(http: httpx.AsyncClient, admin_url: str, name: str, **labels: str) -> float:
    """Sum of the Prometheus samples ``name`` (with these label values) on a daemon's /metrics."""
    text = (await http.get(admin_url + "/metrics")).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))
