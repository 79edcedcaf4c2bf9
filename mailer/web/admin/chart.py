"""The dashboard's chart as inline SVG, drawn on the server: no script, no library.

Bars: signups through the forms, with the day's imports stacked on them in
another colour. Lines: confirmations (readers who joined) and the net growth
after unsubscribes and bounces, which can fall below zero. The numbers are
also in a table under the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from mailer.stats import DayCount

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 30


def _ceiling(value: int) -> int:
    """A round end for the y axis: 4, 5, 10, 20, 50, 100, ... at or above `value`."""
    if value <= 4:
        return 4
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def _line(css: str, days: Sequence[DayCount], x, y, value) -> str:
    points = " ".join(f"{x(index):.1f},{y(value(day)):.1f}" for index, day in enumerate(days))
    return f'<polyline class="{css}" points="{points}"/>'


def signup_chart(days: Sequence[DayCount]) -> Markup:
    """The chart of the last days, oldest on the left."""
    top = _ceiling(
        max((max(d.signups + d.imports, d.confirmations, d.net) for d in days), default=0)
    )
    lowest = min((day.net for day in days), default=0)
    bottom = -_ceiling(-lowest) if lowest < 0 else 0
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_width / max(len(days), 1)

    def y(value: float) -> float:
        return TOP + plot_height * (top - value) / (top - bottom)

    def x(index: int) -> float:
        return LEFT + (index + 0.5) * band

    first, last = (days[0].day, days[-1].day) if days else (None, None)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">Signups, imports, confirmations and net growth per day, '
        f"{first} to {last}</title>",
    ]
    ticks = sorted({bottom, 0, top / 2, top})
    for tick in ticks:
        parts.append(
            f'<line class="grid{" zero" if tick == 0 else ""}" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/><text class="axis" x="{LEFT - 6}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for index, day in enumerate(days):
        left = LEFT + index * band + band * 0.1
        for css, low, high, word in (
            ("bar-signups", 0, day.signups, "signups"),
            ("bar-imports", day.signups, day.signups + day.imports, "imported"),
        ):
            if high > low:
                parts.append(
                    f'<rect class="{css}" x="{left:.1f}" y="{y(high):.1f}" '
                    f'width="{band * 0.8:.1f}" height="{y(low) - y(high):.1f}">'
                    f"<title>{day.day}: {high - low} {word}</title></rect>"
                )
        if index % 15 == 0 or index == len(days) - 1:
            # The first and last labels align to the plot's edges, so none is cut off.
            anchor = "start" if index == 0 else "end" if index == len(days) - 1 else "middle"
            parts.append(
                f'<text class="axis" x="{x(index):.1f}" y="{HEIGHT - 10}" '
                f'text-anchor="{anchor}">{day.day:%d %b}</text>'
            )
    parts.append(_line("line-confirmations", days, x, y, lambda day: day.confirmations))
    parts.append(_line("line-net", days, x, y, lambda day: day.net))
    parts.append("</svg>")
    # Safe: the markup is built here from numbers and dates only, no text from anyone.
    return Markup("".join(parts))  # noqa: S704
