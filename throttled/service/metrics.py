"""Prometheus metrics (prometheus-client), one registry per daemon.

Labels are bounded: outcomes, states, kinds and HTTP status classes — never a callback,
queue or portal id (a big account base would make them unbounded). Counters count events
of this daemon since it started; gauges of backlog and job states are read from the
database at scrape time, so they are the same from every daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import jobs as jobs_sql
from throttled.db.engine import Database
from throttled.states import JobState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the daemon exports; attributes are prometheus-client metric objects."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.webhooks = Counter("throttled_webhooks_total", "Action webhooks by outcome", ["outcome"], registry=r)
        self.batch_size = Histogram("throttled_ingest_batch_size", "Enrollments per group commit",
                                    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=r)
        self.commit_seconds = Histogram("throttled_ingest_commit_seconds", "Group commit latency, seconds",
                                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.releases = Counter("throttled_releases_total", "Completions HubSpot acknowledged", registry=r)
        self.ended = Counter("throttled_executions_ended_total", "Executions ended without a release", ["state"], registry=r)
        self.window_full = Counter("throttled_window_full_total", "Worker runs that found the window full (backlog waiting)",
                                   registry=r)
        self.worker_runs = Counter("throttled_worker_runs_total", "Throttle worker runs", registry=r)
        # Where a release's time goes, stage by stage (bench/release_accuracy.py prints the means).
        self.job_lag = Histogram("throttled_job_lag_seconds", "From a job falling due to its claim, by kind, seconds",
                                 ["kind"], buckets=_LAG_BUCKETS, registry=r)
        self.worker_run_seconds = Histogram("throttled_worker_run_seconds",
                                            "One batch of throttle runs (one transaction), seconds",
                                            buckets=_LAG_BUCKETS, registry=r)
        self.release_wait = Histogram("throttled_release_wait_seconds",
                                      "From a throttle run handing a release over to the start of a HubSpot call "
                                      "carrying it, once per release per call (batching, the pre-call stamp, the "
                                      "portal's budget, retries' back-offs), seconds",
                                      buckets=_LAG_BUCKETS, registry=r)
        self.ack_write = Histogram("throttled_release_ack_write_seconds",
                                   "From HubSpot's answer to a call's acknowledgements being written, once per call "
                                   "(until then a run sees its releases in flight), seconds",
                                   buckets=_LAG_BUCKETS, registry=r)
        self.hubspot_calls = Counter("throttled_hubspot_calls_total", "HubSpot API calls by endpoint and status class",
                                     ["endpoint", "status"], registry=r)
        self.hubspot_seconds = Histogram("throttled_hubspot_call_seconds", "HubSpot API call latency, seconds", ["endpoint"],
                                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.token_refreshes = Counter("throttled_token_refreshes_total", "OAuth token refreshes", registry=r)
        self.revocations = Counter("throttled_portal_revocations_total",
                                   "Portals found revoked (refresh token refused): their queues are held", registry=r)
        self.rescues = Counter("throttled_job_rescues_total", "Jobs rescued after their lease lapsed", registry=r)
        self.orphans = Counter("throttled_orphans_repaired_total", "Queues found with pending work and no job (anomaly)",
                               registry=r)
        self.holds = Counter("throttled_queue_holds_total", "Queues put on hold after repeated HubSpot failures", registry=r)
        self.portal_holds = Counter("throttled_portal_holds_total",
                                    "Portals held because HubSpot refused them as a whole, by kind of refusal "
                                    "(missing_scopes, forbidden, endpoint_missing, daily_limit, client_refused, …)",
                                    ["kind"], registry=r)
        self.clock_skew = Gauge("throttled_clock_skew_seconds",
                                "The database's time minus this host's wall time at the last reading, seconds "
                                "(decisions use the database's time)", registry=r)
        self.portal_tasks = Gauge("throttled_portal_tasks", "Per-portal send tasks alive", registry=r)
        self.backlog = Gauge("throttled_executions", "Pending and releasing executions (whole database); finished "
                             "ones are counted by throttled_releases_total and the like", ["state"], registry=r)
        self.jobs = Gauge("throttled_jobs", "Jobs by state (whole database)", ["state"], registry=r)

    def watch_edge(self, numbers: Callable[[], Mapping[str, int]]) -> None:
        """Export the public listener's limits: ``numbers()`` gives ``connections``,
        ``evicted``, ``refused``, ``body_bytes`` and ``bodies_refused`` (``web/edge_limits.py``)."""
        self.registry.register(_EdgeCollector(numbers))

    async def render(self, db: Database, portal_tasks: int) -> bytes:
        """Read the database gauges, then the exposition text."""
        counts = await db.transaction(_state_counts)
        for execution_state, n in counts[0].items():
            self.backlog.labels(execution_state).set(n)
        for job_state in JobState:
            self.jobs.labels(job_state).set(counts[1].get(job_state, 0))
        self.portal_tasks.set(portal_tasks)
        return generate_latest(self.registry)


def _state_counts(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    return executions_sql.count_active(conn), jobs_sql.count_by_state(conn)


class _EdgeCollector(Collector):
    """Reads the public listener's counts at scrape time."""

    def __init__(self, numbers: Callable[[], Mapping[str, int]]) -> None:
        self._numbers = numbers

    def collect(self) -> Iterator[Metric]:
        n = self._numbers()
        yield GaugeMetricFamily("throttled_http_connections", "Open connections of the public listener",
                                value=n["connections"])
        yield CounterMetricFamily("throttled_http_connections_evicted",
                                  "Idle connections closed because the listener was at THROTTLED_MAX_CONNECTIONS",
                                  value=n["evicted"])
        yield CounterMetricFamily("throttled_http_connections_refused",
                                  "Connections answered 503 at the cap with none idle to close", value=n["refused"])
        yield GaugeMetricFamily("throttled_http_body_bytes", "Request-body bytes admitted now (THROTTLED_BODY_BUDGET)",
                                value=n["body_bytes"])
        yield CounterMetricFamily("throttled_http_bodies_refused",
                                  "Requests answered 503 because THROTTLED_BODY_BUDGET could not cover their body",
                                  value=n["bodies_refused"])
