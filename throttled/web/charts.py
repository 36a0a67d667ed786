"""Inline SVG bar charts of release counts, for the server-rendered pages (the operator's
``/admin`` and the customer's ``/app``) — pure, no scripts, every label escaped.

A chart is one ``<svg>``: a bar per bucket (minute, hour) scaled to the busiest, a
``<title>`` tooltip on each bar, a base line, and an ``aria-label`` saying what it shows.
Empty buckets draw nothing, so a page of many idle queues stays small.
"""

from __future__ import annotations

import datetime as dt
from html import escape

BAR_W, CHART_H = 4, 32  # px per bucket, px of the tallest bar


def bar_chart(counts: list[int], first: dt.datetime, bucket: dt.timedelta, *, unit: str = "minute",
              bar_w: int = BAR_W, height: int = CHART_H) -> str:
    """An SVG bar chart of ``counts`` (oldest first).

    Args:
        counts: releases per bucket.
        first: start of the first bucket (aware); bucket ``i`` starts at ``first + i·bucket``.
        bucket: the length of a bucket (a minute, an hour); tooltips name a bucket by its
            start (``09:30 UTC``), or by its start and end when longer than a minute.
        unit: the bucket's name in the chart's label ("releases per minute …").
        bar_w: px per bucket (each bar is one px narrower); height: px of the tallest bar.
    Returns:
        the ``<svg class="chart">`` element, ``bar_w · len(counts)`` px wide.
    """
    width = bar_w * len(counts)
    peak = max(counts, default=0)
    start = first.astimezone(dt.UTC)
    bars = []
    for i, n in enumerate(counts):
        if not n:
            continue
        begins = start + i * bucket
        when = f"{begins:%H:%M}" if bucket <= dt.timedelta(minutes=1) else f"{begins:%H:%M}–{begins + bucket:%H:%M}"
        h = max(1, round(n / peak * height))
        tip = escape(f"{when} UTC: {n} released")
        bars.append(f'<rect x="{i * bar_w}" y="{height - h}" width="{bar_w - 1}" height="{h}">'
                    f"<title>{tip}</title></rect>")
    span = _span(bucket * len(counts))
    label = escape(f"releases per {unit} over the last {span}, peak {peak}")
    return (f'<svg class="chart" width="{width}" height="{height + 1}" viewBox="0 0 {width} {height + 1}" '
            f'role="img" aria-label="{label}"><line x1="0" y1="{height + 0.5}" x2="{width}" '
            f'y2="{height + 0.5}"/>{"".join(bars)}</svg>')


def minute_chart(counts: list[int], end: dt.datetime, *, bar_w: int = BAR_W, height: int = CHART_H) -> str:
    """:func:`bar_chart` of per-minute ``counts`` whose last bar is the minute holding ``end``."""
    last_minute = end.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return bar_chart(counts, last_minute - dt.timedelta(minutes=len(counts) - 1), dt.timedelta(minutes=1),
                     bar_w=bar_w, height=height)


def per_hour(minutes: list[int]) -> list[int]:
    """Per-minute counts summed into hours, from the end: the last hour is the last 60
    entries (a partial first hour when ``len(minutes)`` is not a multiple of 60)."""
    head = len(minutes) % 60
    hours = [sum(minutes[:head])] if head else []
    return hours + [sum(minutes[i:i + 60]) for i in range(head, len(minutes), 60)]


def _span(length: dt.timedelta) -> str:
    minutes = int(length.total_seconds() // 60)
    if minutes % 60 or minutes < 120:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours"
