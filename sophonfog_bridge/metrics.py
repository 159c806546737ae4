"""Prometheus metrics for one bridge, in its own registry so two bridges never mix."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    # Long on purpose: one declaration per metric and nothing else, read as a list.
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "sophonfog_requests", "POSTs received, by route kind", ["route"], registry=r
        )
        self.accepted = Counter(
            "sophonfog_records_accepted", "Records accepted into the spool", ["kind"], registry=r
        )
        self.rejected = Counter(
            "sophonfog_requests_rejected", "Requests answered with an error", ["reason"], registry=r
        )
        self.dropped = Counter(
            "sophonfog_events_dropped",
            "Valid events answered 200 but not spooled",
            ["reason"],
            registry=r,
        )
        self.spool_depth = Gauge(
            "sophonfog_spool_depth", "Records the slowest plugin has yet to finish", registry=r
        )
        self.ack_latency = Histogram(
            "sophonfog_ack_seconds",
            "Time from request start to answer",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.spool_corrupt = Counter(
            "sophonfog_spool_corrupt_records",
            "Spooled records found corrupt and skipped (lost) since the bridge started",
            registry=r,
        )
        self.box_connected = Gauge(
            "sophonfog_box_connected", "1 while the box's websocket is up", ["box"], registry=r
        )
        self.box_reconnects = Counter(
            "sophonfog_box_reconnects",
            "Websocket connection attempts after the first",
            ["box"],
            registry=r,
        )
        self.box_frames_skipped = Counter(
            "sophonfog_box_frames_skipped",
            "Websocket frames that were not an acceptable event",
            ["box", "reason"],
            registry=r,
        )
        self.door_decisions = Counter(
            "sophonfog_door_decisions", "Door decisions by result", ["door", "decision"], registry=r
        )

    def watch_plugins(self, stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        """Publish each plugin's counters and backlog as `stats()` gives them when scraped.

        Read from the workers' own counts when scraped, not counted again per record:
        they may live in the plugin process, and a scrape is rare where records are not.
        """
        self.registry.register(_PluginCollector(stats))

    def render(self, refresh: Any = None) -> bytes:
        if refresh is not None:
            refresh(self)
        return generate_latest(self.registry)


class _PluginCollector:
    def __init__(self, stats: Callable[[], Mapping[str, Mapping[str, int]]]):
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        families = {
            "delivered": CounterMetricFamily(
                "sophonfog_plugin_deliveries", "Records a plugin finished", labels=["plugin"]
            ),
            "failed": CounterMetricFamily(
                "sophonfog_plugin_failures", "Records a plugin gave up on", labels=["plugin"]
            ),
            "retries": CounterMetricFamily(
                "sophonfog_plugin_retries", "Delivery attempts repeated", labels=["plugin"]
            ),
            "backlog": GaugeMetricFamily(
                "sophonfog_plugin_backlog",
                "Spooled records a plugin has yet to finish",
                labels=["plugin"],
            ),
        }
        for plugin, stats in self.stats().items():
            for key, family in families.items():
                family.add_metric([plugin], stats.get(key, 0))
        yield from families.values()
