"""The display's statistics as Prometheus metrics (``/metrics`` on the browser view), with the standard client.

Every label has a bounded set of values (at most 64 streams, ended ones forgotten; the stages and each stage's
fixed vocabulary of counter names, ``metrics.EVENTS``: a name a peer invents is never a series; 17 emotion labels;
64 workers), so a hostile stream cannot make the metrics grow or churn without end.

=====================================  =========  ============================================================
metric                                 type       labels
=====================================  =========  ============================================================
``dogfilter_frames_total``             counter    stream: frames shown
``dogfilter_faces_total``              counter    stream, emotion: faces painted, by the emotion that chose the mask
``dogfilter_latency_seconds``          histogram  stream, hop: per hop and capture→display
``dogfilter_stage_events_total``       counter    stream, stage, event: every stage's counters (drops by reason...)
``dogfilter_frames_per_second``        gauge      stream
``dogfilter_stream_up``                gauge      stream: 1 while the stream runs, 0 once it ended
``dogfilter_classify_workers``         gauge      the classify workers the composite knows
``dogfilter_classify_jobs_total``      counter    worker: jobs each finished
=====================================  =========  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric


class DisplayCollector:
    """Reads the display's state at every scrape (nothing is kept twice)."""

    def __init__(self, display: Any) -> None:
        self.display = display

    def collect(self) -> Iterator[Metric]:
        d = self.display
        frames = CounterMetricFamily("dogfilter_frames", "frames shown", labels=["stream"])
        faces = CounterMetricFamily("dogfilter_faces", "faces painted, by emotion", labels=["stream", "emotion"])
        lat = HistogramMetricFamily("dogfilter_latency_seconds", "latency per hop", labels=["stream", "hop"])
        events = CounterMetricFamily("dogfilter_stage_events", "every stage's counters (drops by reason...)",
                                     labels=["stream", "stage", "event"])
        fps = GaugeMetricFamily("dogfilter_frames_per_second", "frames shown per second", labels=["stream"])
        up = GaugeMetricFamily("dogfilter_stream_up", "1 while the stream runs, 0 once it ended", labels=["stream"])
        for name, s in list(d.streams.items()):
            frames.add_metric([name], s.frames)
            fps.add_metric([name], s.rate.per_second())
            up.add_metric([name], 0 if s.ended is not None else 1)
            for emotion, n in list(s.emotions.items()):
                faces.add_metric([name, emotion], n)
            for hop, h in list(s.histograms.items()):
                lat.add_metric([name, hop], h.buckets(), h.sum)
            for stage, counts in list(s.stages.items()):
                for event, n in list(counts.items()):
                    events.add_metric([name, stage, event], n)
        own = CounterMetricFamily("dogfilter_display_events", "the display's own counters", labels=["event"])
        for event, n in list(d.counters.items()):
            own.add_metric([event], n)
        workers = GaugeMetricFamily("dogfilter_classify_workers", "classify workers the composite knows")
        workers.add_metric([], len(d.workers))
        jobs = CounterMetricFamily("dogfilter_classify_jobs", "jobs each classify worker finished", labels=["worker"])
        for worker, n in list(d.workers.items()):
            jobs.add_metric([worker], n)
        yield from (frames, faces, lat, events, fps, up, own, workers, jobs)


def metrics_route(display: Any) -> Callable[[], tuple[bytes, str]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DisplayCollector(display))
    return lambda: (generate_latest(registry), CONTENT_TYPE_LATEST)
