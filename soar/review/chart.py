"""The threat-mitigation curve as a self-contained SVG: alerts per day (bars), median time to contain (line).

Written by hand rather than with matplotlib: a few dozen lines of SVG, no heavy
dependency, and the output is text that tests can read and diff.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from soar.review.render import format_duration

WIDTH, HEIGHT = 800, 360
LEFT, RIGHT, TOP, BOTTOM = 60, 70, 40, 60


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover


def mitigation_svg(series: list[dict[str, Any]], title: str = "Alerts and time to contain") -> str:
    """``series``: ``[{"day": "2026-11-28", "alerts": 3, "mttc_median": 42.0 | None}, ...]``."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(series), 1)
    slot = plot_w / n
    max_alerts = _nice_max(max((s["alerts"] for s in series), default=0))
    max_mttc = _nice_max(max((s["mttc_median"] or 0 for s in series), default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(5):  # grid and both axes' labels
        frac = i / 4
        y = TOP + plot_h - frac * plot_h
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{max_alerts * frac:g}</text>')
        label = escape(format_duration(max_mttc * frac))
        parts.append(f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}" fill="#b42318">{label}</text>')
    points = []
    for i, s in enumerate(series):
        x = LEFT + i * slot
        h = s["alerts"] / max_alerts * plot_h
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.15:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="#7aa2d6"><title>{escape(s["day"])}: {s["alerts"]} alerts</title></rect>'
        )
        if n <= 31 or i % max(1, n // 15) == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="end" '
                f'transform="rotate(-40 {x + slot / 2:.1f} {TOP + plot_h + 14})">{escape(s["day"][5:])}</text>'
            )
        if s["mttc_median"] is not None:
            y = TOP + plot_h - s["mttc_median"] / max_mttc * plot_h
            points.append((x + slot / 2, y, s))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        parts.append(f'<polyline class="mttc" points="{path}" fill="none" stroke="#b42318" stroke-width="2"/>')
        for x, y, s in points:
            tip = f"{escape(s['day'])}: median time to contain {escape(format_duration(s['mttc_median']))}"
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#b42318"><title>{tip}</title></circle>')
    parts += [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333"/>',
        f'<text x="{LEFT}" y="{HEIGHT - 8}" fill="#3b6fb6">■ alerts per day</text>',
        f'<text x="{LEFT + 140}" y="{HEIGHT - 8}" fill="#b42318">● median time to contain</text>',
    ]
    if not series:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no alerts in this period</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
