"""Small server-side SVG pictures for the alert page: the network around an account and its timeline."""

from __future__ import annotations

import math
from html import escape

import polars as pl

from casework.review.formatting import eur

LINK_COLOURS = {"money": "#b03030", "same address": "#2a6f97", "same phone": "#6a4c93", "same device": "#e07a00"}


def _colour(links: str) -> str:
    for key, colour in LINK_COLOURS.items():
        if links.startswith(key) or f", {key}" in links:
            return colour
    return "#777"


def network_svg(center: str, links: pl.DataFrame, width: int = 560, height: int = 380) -> str:
    """The account in the middle, linked accounts on a circle; alerted ones filled, edges coloured by link kind."""
    cx, cy, r = width / 2, height / 2, min(width, height) / 2 - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="network of linked accounts" class="network">'
    ]
    n = max(links.height, 1)
    nodes = []
    for i, row in enumerate(links.iter_rows(named=True)):
        a = 2 * math.pi * i / n - math.pi / 2
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        colour = _colour(row["links"])
        width_px = 1 + min(5, (row["amount"] or 0) / 2000)
        parts.append(
            f'<line x1="{cx:.0f}" y1="{cy:.0f}" x2="{x:.0f}" y2="{y:.0f}" stroke="{colour}" stroke-width="{width_px:.1f}"/>'
        )
        nodes.append((x, y, row))
    for x, y, row in nodes:
        label = (row["other"] or "other bank")[:8]
        fill = "#f4a261" if row["alert_id"] else "#fff"
        title = escape(
            f"{row['links']}"
            + (f", {eur(row['amount'])}" if row["amount"] else "")
            + (f", alert score {row['score']:.2f}" if row["score"] is not None else "")
        )
        node = f'<circle cx="{x:.0f}" cy="{y:.0f}" r="14" fill="{fill}" stroke="#333"><title>{title}</title></circle>'
        if row["alert_id"]:
            node = f'<a href="/alerts/{escape(row["alert_id"])}">{node}</a>'
        parts.append(node)
        parts.append(f'<text x="{x:.0f}" y="{y + 28:.0f}" text-anchor="middle" font-size="11">{escape(label)}</text>')
        if row["role"] and row["alert_id"]:
            parts.append(
                f'<text x="{x:.0f}" y="{y + 40:.0f}" text-anchor="middle" font-size="10" fill="#555">{escape(row["role"])}</text>'
            )
    parts.append(f'<circle cx="{cx:.0f}" cy="{cy:.0f}" r="20" fill="#e63946" stroke="#333"/>')
    parts.append(
        f'<text x="{cx:.0f}" y="{cy + 36:.0f}" text-anchor="middle" font-size="12" font-weight="bold">{escape(center[:8])}</text>'
    )
    y0 = 16
    for key, colour in LINK_COLOURS.items():
        parts.append(
            f'<line x1="8" y1="{y0}" x2="28" y2="{y0}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="32" y="{y0 + 4}" font-size="11">{escape(key)}</text>'
        )
        y0 += 16
    parts.append("</svg>")
    return "".join(parts)


def timeline_svg(tl: pl.DataFrame, width: int = 900, height: int = 150) -> str:
    """Bookings over the window: money in above the middle line, out below, evidence in red; dates along the bottom."""
    if tl.height == 0:
        return ""
    t0, t1 = tl["booked_at"].min(), tl["booked_at"].max()
    span = max((t1 - t0).total_seconds(), 1.0)
    top = max(float(tl["amount_eur"].max()), 1.0)
    plot, left = height - 26, 30
    mid = plot / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="timeline" class="timeline">',
        f'<line x1="{left}" y1="{mid}" x2="{width}" y2="{mid}" stroke="#999"/>',
        f'<line x1="{left}" y1="{plot}" x2="{width}" y2="{plot}" stroke="#333"/>',
    ]

    def x_of(t) -> float:
        return left + 5 + (width - left - 10) * (t - t0).total_seconds() / span

    ticks = 8 if span > 8 * 86400 else 4
    for i in range(ticks + 1):  # the date axis: evenly spaced days, labelled
        t = t0 + (t1 - t0) * i / ticks
        x = x_of(t)
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{plot}" x2="{x:.1f}" y2="{plot + 4}" stroke="#333"/>'
            f'<text class="tick-label" x="{x:.1f}" y="{plot + 16}" font-size="10" text-anchor="middle">{t:%d %b %Y}</text>'
        )
    for row in tl.sort("evidence").iter_rows(named=True):
        x = x_of(row["booked_at"])
        h = 4 + (mid - 8) * math.sqrt(float(row["amount_eur"]) / top)
        y2 = mid - h if row["direction"] == "credit" else mid + h
        colour = "#d62828" if row["evidence"] else "#9aa5b1"
        parts.append(
            f'<line x1="{x:.1f}" y1="{mid}" x2="{x:.1f}" y2="{y2:.1f}" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(str(row['booked_at'])[:16])} {row['direction']} {escape(eur(row['amount_eur']))} "
            f"{escape(row['channel'])}</title></line>"
        )
    parts.append(f'<text x="4" y="12" font-size="10">in</text><text x="4" y="{plot - 4}" font-size="10">out</text></svg>')
    return "".join(parts)
