"""Inline SVG charts: no plotting library, no images, integer ticks for counts (never "2.5 records")."""
from __future__ import annotations

import html
import math

PALETTE = ("#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def count_ticks(top: int, most: int = 5) -> list[int]:
    """Whole-number ticks from 0 covering `top`, at a 1-2-5 step: counts are integers."""
    if top <= 0:
        return [0, 1]
    raw = max(1.0, top / most)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    return list(range(0, top + step, step))[: most + 2]


def stacked_bars(rows: list[tuple[str, dict[str, int]]], title: str, width: int = 760) -> str:
    """Horizontal stacked bars, one row per label, one colour per segment name (with a legend)."""
    names = list(dict.fromkeys(name for _, segments in rows for name in segments))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    left, bar, gap = 170, 18, 8
    top = max((sum(segments.values()) for _, segments in rows), default=0)
    ticks = count_ticks(top)
    scale = (width - left - 20) / max(ticks[-1], 1)
    height = len(rows) * (bar + gap) + 40
    parts = [_open(title, width, height, 11)]
    for tick in ticks:
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 28}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{height - 16}" text-anchor="middle">{tick:,}</text>')
    for index, (label, segments) in enumerate(rows):
        y = index * (bar + gap) + 4
        parts.append(f'<text x="{left - 6}" y="{y + bar - 5}" text-anchor="end">{html.escape(label)}</text>')
        x = float(left)
        for name, n in segments.items():
            if n <= 0:
                continue
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{n * scale:.1f}" height="{bar}" fill="{colours[name]}">'
                         f'<title>{html.escape(label)}: {html.escape(name)} {n:,}</title></rect>')
            x += n * scale
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{colours[n]}"></i>{html.escape(n)}</span>'
                     for n in names)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def columns(labels: list[str], series: dict[str, list[int]], title: str, width: int = 760, height: int = 220) -> str:
    """Vertical bars per label, series side by side (e.g. before/after), integer y ticks."""
    names = list(series)
    bottom, left = 40, 50
    top = max((max(values, default=0) for values in series.values()), default=0)
    ticks = count_ticks(top)
    scale = (height - bottom - 10) / max(ticks[-1], 1)
    slot = (width - left - 10) / max(len(labels), 1)
    bar = min(40.0, max(1.0, slot / (len(names) + 1)))
    parts = [_open(title, width, height, 10)]
    for tick in ticks:
        y = height - bottom - tick * scale
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{tick:,}</text>')
    every = max(1, len(labels) // 12)
    for i, label in enumerate(labels):
        x0 = left + i * slot
        for j, name in enumerate(names):
            n = series[name][i]
            if n:
                parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{height - bottom - n * scale:.1f}" width="{bar:.1f}" '
                             f'height="{n * scale:.1f}" fill="{PALETTE[j % len(PALETTE)]}"><title>{html.escape(label)}'
                             f' {html.escape(name)}: {n:,}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x0 + slot / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                         f'{html.escape(label)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{PALETTE[j % len(PALETTE)]}"></i>{html.escape(n)}'
                     f' ({sum(series[n]):,})</span>' for j, n in enumerate(names))
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _open(title: str, width: int, height: int, font_size: int) -> str:
    return (f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg" font-size="{font_size}">')
