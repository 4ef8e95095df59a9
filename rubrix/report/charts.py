"""Inline SVG charts written out in Python: no chart library, no legend to hunt for.

Every mark is labelled where it stands (the value beside the bar, the count above the bin), and
carries its number in a ``data-value`` attribute so a test can check the chart against the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

W = 720


def _num(x: float | None, fmt: str) -> str:
    if x is None:
        return "–"
    return format(x, fmt) if fmt != "%" else f"{100 * x:.0f}%"


def histogram_svg(hist: dict[str, Any], *, failed: int = 0, title: str = "reward") -> str:
    """Vertical bars over [0, 1] with the count above each non-empty bin."""
    counts: list[int] = hist["counts"]
    edges: list[float] = hist["edges"]
    if not sum(counts):
        return (
            f'<p class="empty">No scored samples: every sample failed ({failed}), so there is no reward '
            "to plot.</p>"
        )
    h, left, bottom, top = 220, 40, 36, 18
    plot_w = W - left - 10
    bw = plot_w / len(counts)
    peak = max(counts)
    parts = [
        f'<svg class="chart" id="hist" viewBox="0 0 {W} {h}" role="img" '
        f'aria-label="{escape(title)} histogram">'
    ]
    for i, c in enumerate(counts):
        bh = (h - bottom - top) * c / peak
        x = left + i * bw
        y = h - bottom - bh
        parts.append(
            f'<rect class="bin" x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" '
            f'data-lo="{edges[i]}" data-hi="{edges[i + 1]}" data-value="{c}">'
            f"<title>{edges[i]:.2f}–{edges[i + 1]:.2f}: {c} samples</title></rect>"
        )
        if c:
            parts.append(
                f'<text class="lbl" x="{x + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{c}</text>'
            )
    axis_y = h - bottom
    parts.append(f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/>')
    for t in (0, 0.25, 0.5, 0.75, 1):
        x = left + t * plot_w
        parts.append(
            f'<line class="axis" x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}"/>'
            f'<text class="tick" x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">{t:g}</text>'
        )
    parts.append(
        f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{h - 2}" text-anchor="middle">'
        f"{escape(title)} (clipped to 0–1); bar label = samples in the bin</text></svg>"
    )
    if failed:
        parts.append(
            f'<p class="note" id="hist-missing">{failed} samples have no reward (status partial or failed) '
            "and are not in the histogram.</p>"
        )
    return "".join(parts)


def bars_svg(
    rows: Sequence[dict[str, Any]],
    *,
    chart_id: str,
    fmt: str = "%",
    lo: float = 0.0,
    hi: float = 1.0,
    note: str = "",
    label_w: int = 230,
) -> str:
    """Horizontal bars, one per row: ``label``, ``value``, optional ``ci`` [lo, hi], optional
    ``spread`` (quartiles: min, q1, median, q3, max) drawn as a box over the bar, ``text`` after it."""
    if not rows:
        return '<p class="empty">Nothing to plot.</p>'
    row_h, top = 24, 6
    h = top + row_h * len(rows) + 22
    plot_w = W - label_w - 190

    def sx(v: float) -> float:
        return label_w + plot_w * (min(hi, max(lo, v)) - lo) / (hi - lo)

    parts = [f'<svg class="chart" id="{chart_id}" viewBox="0 0 {W} {h}" role="img">']
    zero = sx(0.0) if lo < 0 < hi else sx(lo)
    for i, r in enumerate(rows):
        y = top + i * row_h
        label = str(r["label"])
        limit = label_w // 7
        short = label if len(label) <= limit else "…" + label[-(limit - 1) :]  # the end tells sources apart
        cls = "name group" if r.get("group") else "name"
        parts.append(
            f'<text class="{cls}" x="{label_w - 6}" y="{y + 15}" text-anchor="end"><title>{escape(label)}'
            f"</title>{escape(short)}</text>"
        )
        v = r.get("value")
        if v is not None:
            x0, x1 = sorted((zero, sx(v)))
            cls = "bar neg" if v < 0 else "bar"
            parts.append(
                f'<rect class="{cls}" x="{x0:.1f}" y="{y + 4}" width="{max(0.5, x1 - x0):.1f}" height="14" '
                f'data-label="{escape(label)}" data-value="{v}"/>'
            )
        if r.get("ci"):
            a, b = r["ci"]
            parts.append(
                f'<line class="ci" x1="{sx(a):.1f}" y1="{y + 11}" x2="{sx(b):.1f}" y2="{y + 11}" '
                f'data-lo="{a}" data-hi="{b}">'
                f"<title>95% interval {_num(a, fmt)}–{_num(b, fmt)}</title></line>"
                f'<line class="ci" x1="{sx(a):.1f}" y1="{y + 6}" x2="{sx(a):.1f}" y2="{y + 16}"/>'
                f'<line class="ci" x1="{sx(b):.1f}" y1="{y + 6}" x2="{sx(b):.1f}" y2="{y + 16}"/>'
            )
        if r.get("spread"):
            q = r["spread"]
            parts.append(
                f'<g class="spread" data-q="{",".join(str(x) for x in q)}"><title>P: min {q[0]}, quartiles '
                f"{q[1]} / {q[2]} / {q[3]}, max {q[4]}</title>"
                f'<line x1="{sx(q[0]):.1f}" y1="{y + 11}" x2="{sx(q[4]):.1f}" y2="{y + 11}"/>'
                f'<rect x="{sx(q[1]):.1f}" y="{y + 7}" width="{max(1, sx(q[3]) - sx(q[1])):.1f}" height="8"/>'
                f'<line class="med" x1="{sx(q[2]):.1f}" y1="{y + 5}" x2="{sx(q[2]):.1f}" y2="{y + 17}"/></g>'
            )
        text = r.get("text", _num(v, fmt))
        parts.append(f'<text class="val" x="{label_w + plot_w + 6}" y="{y + 15}">{escape(text)}</text>')
    axis_y = top + row_h * len(rows) + 2
    ticks = [lo + (hi - lo) * k / 4 for k in range(5)]
    for t in ticks:
        parts.append(
            f'<text class="tick" x="{sx(t):.1f}" y="{axis_y + 14}" text-anchor="middle">{_num(t, fmt)}</text>'
            f'<line class="grid" x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{axis_y}"/>'
        )
    parts.append("</svg>")
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    return "".join(parts)
