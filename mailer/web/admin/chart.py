"""The dashboard's signup chart as inline SVG, drawn on the server: no script, no library."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from mailer.stats import DayCount

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 30


def _ceiling(value: int) -> int:
    """A round top for the y axis: 4, 5, 10, 20, 50, 100, ... at or above `value`."""
    if value <= 4:
        return 4
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def signup_chart(days: Sequence[DayCount]) -> Markup:
    """Bars of signups and a line of confirmations per day; the numbers are also in a table."""
    top = _ceiling(max((max(day.signups, day.confirmations) for day in days), default=0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_width / max(len(days), 1)

    def y(value: float) -> float:
        return TOP + plot_height * (1 - value / top)

    first, last = (days[0].day, days[-1].day) if days else (None, None)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">Signups and confirmations per day, {first} to {last}</title>',
    ]
    for tick in (0, top / 2, top):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="axis" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
    for index, day in enumerate(days):
        x = LEFT + index * band
        if day.signups:
            parts.append(
                f'<rect class="bar-signups" x="{x + band * 0.1:.1f}" y="{y(day.signups):.1f}" '
                f'width="{band * 0.8:.1f}" height="{plot_height * day.signups / top:.1f}">'
                f"<title>{day.day}: {day.signups} signups</title></rect>"
            )
        if index % 15 == 0 or index == len(days) - 1:
            # The first and last labels align to the plot's edges, so none is cut off.
            anchor = "start" if index == 0 else "end" if index == len(days) - 1 else "middle"
            parts.append(
                f'<text class="axis" x="{x + band / 2:.1f}" y="{HEIGHT - 10}" '
                f'text-anchor="{anchor}">{day.day:%d %b}</text>'
            )
    points = " ".join(
        f"{LEFT + (index + 0.5) * band:.1f},{y(day.confirmations):.1f}"
        for index, day in enumerate(days)
    )
    parts.append(f'<polyline class="line-confirmations" points="{points}"/>')
    parts.append("</svg>")
    # Safe: the markup is built here from numbers and dates only, no text from anyone.
    return Markup("".join(parts))  # noqa: S704
