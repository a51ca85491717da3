"""Server-side SVG for the case page: the case's network as a directed graph (networkx lays it out, we draw it) and the
money moving inside the case per week. No script and no downloads: the page stays a plain document."""

from __future__ import annotations

import math
from html import escape

import networkx as nx
import polars as pl

from casework.review.formatting import eur, short_account

ROLE_STYLE = {  # role -> (fill, shape, what the legend says)
    "controller": ("#c92a2a", "square", "likely controller"),
    "employer": ("#e8590c", "square", "likely employer"),
    "hub": ("#ffffff", "square", "not alerted, paid by 2+ case accounts"),
    "mule": ("#7048e8", "circle", "likely mule"),
    "victim": ("#1c7ed6", "circle", "likely victim"),
    "linked": ("#868e96", "circle", "linked"),
}
SHARED_COLOUR = {"address": "#2b8a3e", "phone": "#5f3dc4", "device": "#e67700"}
MONEY_COLOUR = "#343a40"
LABELLED_EDGES = 10  # the largest money edges carry their amount on the picture; the rest in their tooltip and the table


def _node_label(row: dict) -> str:
    if not row["visible"]:
        return f"{row['bank_id'] or 'other bank'}"
    return short_account(row["account_id"])


def layout(nodes: pl.DataFrame, edges: pl.DataFrame, shared: pl.DataFrame, seed: int = 7) -> dict[str, tuple[float, float]]:
    """Positions in 0..1 (Kamada-Kawai, then a few spring steps to loosen clusters). Shared keys are nodes of their own
    ('key:kind:n'), so ten accounts at one address are ten dashed spokes, not 45 lines."""
    g = nx.Graph()
    g.add_nodes_from(nodes["account_id"].to_list())
    for e in edges.iter_rows(named=True):
        g.add_edge(e["src"], e["dst"], weight=1 + math.log10(1 + e["amount"]) / 2)
    for i, s in enumerate(shared.iter_rows(named=True)):
        for a in s["accounts"]:
            g.add_edge(f"key:{s['kind']}:{i}", a, weight=0.6)
    if len(g) > 2:  # Kamada-Kawai spreads nodes evenly by their distance in the graph: fewer overlapping labels than springs
        pos = nx.kamada_kawai_layout(g, weight=None)
        pos = nx.spring_layout(g, pos=pos, seed=seed, k=2.2 / math.sqrt(len(g)), iterations=25)
    else:
        pos = {n: (float(i), 0.0) for i, n in enumerate(g.nodes)}
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    unit = {n: ((p[0] - x0) / ((x1 - x0) or 1), (p[1] - y0) / ((y1 - y0) or 1)) for n, p in pos.items()}
    # half of each coordinate by its rank: dense clusters open up and the canvas fills, the order of nodes stays
    last = max(len(unit) - 1, 1)
    rank_x = {n: i / last for i, n in enumerate(sorted(unit, key=lambda k: unit[k][0]))}
    rank_y = {n: i / last for i, n in enumerate(sorted(unit, key=lambda k: unit[k][1]))}
    return {n: (0.5 * u[0] + 0.5 * rank_x[n], 0.5 * u[1] + 0.5 * rank_y[n]) for n, u in unit.items()}


def spread(points: dict, box: tuple[float, float, float, float], gap: float = 66, rounds: int = 200) -> dict:
    """Push apart nodes closer than `gap` pixels (labels sit under them), inside the box: a layout is about distances in
    the graph, a reader needs room for every label."""
    keys = list(points)
    p = {k: list(v) for k, v in points.items()}
    x0, y0, x1, y1 = box
    for _ in range(rounds):
        moved = False
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                dx, dy = p[b][0] - p[a][0], p[b][1] - p[a][1]
                d = math.hypot(dx, dy)
                if d >= gap:
                    continue
                if d < 1e-6:
                    dx, dy, d = 1.0, 0.5, math.hypot(1.0, 0.5)
                push = (gap - d) / 2
                ux, uy = dx / d * push, dy / d * push
                p[a][0], p[a][1], p[b][0], p[b][1] = p[a][0] - ux, p[a][1] - uy, p[b][0] + ux, p[b][1] + uy
                moved = True
        for k in keys:
            p[k][0], p[k][1] = min(max(p[k][0], x0), x1), min(max(p[k][1], y0), y1)
        if not moved:
            break
    return {k: (v[0], v[1]) for k, v in p.items()}


def case_network_svg(nodes: pl.DataFrame, edges: pl.DataFrame, shared: pl.DataFrame) -> str:
    """Who pays whom (arrows, amount and count), shared address/phone/device (dashed, through a small key node), roles by
    shape and colour, every account of the case; alerted accounts the user may open are links."""
    n = nodes.height + shared.height
    width, height = 1100, int(min(1000, 380 + 24 * n))
    left, top, right, bottom = 60, 110, 60, 50
    pos = layout(nodes, edges, shared)
    pixels = spread(
        {k: (left + px * (width - left - right), top + py * (height - top - bottom)) for k, (px, py) in pos.items()},
        (left, top, width - right, height - bottom),
    )

    def xy(key: str) -> tuple[float, float]:
        return pixels[key]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" role="img" '
        f'aria-label="the case as a network: who pays whom, shared details" class="case-network">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{MONEY_COLOUR}"/></marker></defs>',
    ]
    parts += _legend()
    for i, s in enumerate(shared.iter_rows(named=True)):  # shared keys under the money
        kx, ky = xy(f"key:{s['kind']}:{i}")
        colour = SHARED_COLOUR.get(s["kind"], "#777")
        for a in s["accounts"]:
            ax, ay = xy(a)
            parts.append(
                f'<line class="shared-edge" x1="{ax:.0f}" y1="{ay:.0f}" x2="{kx:.0f}" y2="{ky:.0f}" stroke="{colour}" '
                f'stroke-width="1.5" stroke-dasharray="5,4"/>'
            )
        parts.append(
            f'<g class="shared-key"><path d="M{kx:.0f},{ky - 8:.0f} l8,8 l-8,8 l-8,-8 z" fill="{colour}"><title>'
            f"same {escape(s['kind'])}: {len(s['accounts'])} accounts</title></path>"
            f'<text x="{kx + 11:.0f}" y="{ky + 4:.0f}" font-size="10" fill="{colour}">same {escape(s["kind"])}</text></g>'
        )
    pairs = {(e["src"], e["dst"]) for e in edges.iter_rows(named=True)}
    top_amounts = sorted(edges["amount"].to_list(), reverse=True)[:LABELLED_EDGES] if edges.height else []
    cut = top_amounts[-1] if top_amounts else 0
    shown = {r["account_id"]: (r["account_id"] if r["visible"] else "") for r in nodes.iter_rows(named=True)}
    placed: list[tuple[float, float]] = []  # edge labels already drawn: a label that would sit on one is left to the tooltip
    for e in edges.iter_rows(named=True):
        ends = (shown.get(e["src"], ""), shown.get(e["dst"], ""))  # another bank's id never reaches the page
        (x1, y1), (x2, y2) = xy(e["src"]), xy(e["dst"])
        mid = ((x1 + x2) / 2, (y1 + y2) / 2)
        free = e["amount"] >= cut and all(abs(mid[0] - q[0]) > 70 or abs(mid[1] - q[1]) > 14 for q in placed)
        if free:
            placed.append(mid)
        parts.append(_money_edge(xy(e["src"]), xy(e["dst"]), e, (e["dst"], e["src"]) in pairs, free, ends))
    for r in nodes.iter_rows(named=True):
        parts.append(_node(xy(r["account_id"]), r))
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> list[str]:
    out, x = [], 8
    for role, (fill, shape, words) in ROLE_STYLE.items():
        out.append(_shape(x + 7, 16, 6, fill, shape, dashed=role == "hub"))
        out.append(f'<text x="{x + 17}" y="20" font-size="11">{escape(words)}</text>')
        x += 24 + 6.2 * len(words)
    out.append(
        f'<line x1="8" y1="42" x2="40" y2="42" stroke="{MONEY_COLOUR}" stroke-width="2" marker-end="url(#arrow)"/>'
        '<text x="46" y="46" font-size="11">money paid (EUR total · transfers), arrow to the payee</text>'
    )
    x = 390
    for kind, colour in SHARED_COLOUR.items():
        out.append(
            f'<line x1="{x}" y1="42" x2="{x + 28}" y2="42" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5,4"/>'
            f'<text x="{x + 32}" y="46" font-size="11">same {kind}</text>'
        )
        x += 125
    out.append('<text x="8" y="66" font-size="11" fill="#555">grey label: another bank\'s account (no id shown)</text>')
    return out


def _shape(x: float, y: float, r: float, fill: str, shape: str, dashed: bool = False, stroke: str = "#222") -> str:
    dash = ' stroke-dasharray="3,2"' if dashed else ""
    if shape == "square":
        return f'<rect x="{x - r:.0f}" y="{y - r:.0f}" width="{2 * r:.0f}" height="{2 * r:.0f}" fill="{fill}" stroke="{stroke}"{dash}/>'
    return f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{r:.0f}" fill="{fill}" stroke="{stroke}"{dash}/>'


def _money_edge(
    a: tuple[float, float], b: tuple[float, float], e: dict, both_ways: bool, labelled: bool, ends: tuple[str, str]
) -> str:
    (x1, y1), (x2, y2) = a, b
    dx, dy = x2 - x1, y2 - y1
    d = math.hypot(dx, dy) or 1.0
    ux, uy = dx / d, dy / d
    r = 15
    sx, sy, ex, ey = x1 + ux * r, y1 + uy * r, x2 - ux * (r + 2), y2 - uy * (r + 2)
    bend = 18 if both_ways else 0  # two directions between one pair: two arcs, not one line
    cx, cy = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
    w = 1 + min(5.0, math.log10(1 + e["amount"]) - 1.5) if e["amount"] > 30 else 1
    text = f"{eur(e['amount'])} · {e['n']}×"
    title = escape(f"{text}, {e['first']:%Y-%m-%d} to {e['last']:%Y-%m-%d}")
    out = (
        f'<path class="money-edge" data-src="{escape(ends[0])}" data-dst="{escape(ends[1])}" d="M{sx:.0f},{sy:.0f} '
        f'Q{cx:.0f},{cy:.0f} {ex:.0f},{ey:.0f}" fill="none" stroke="{MONEY_COLOUR}" stroke-opacity="0.75" '
        f'stroke-width="{w:.1f}" marker-end="url(#arrow)"><title>{title}</title></path>'
    )
    if labelled:
        mx, my = (sx + 2 * cx + ex) / 4, (sy + 2 * cy + ey) / 4
        out += (
            f'<text x="{mx:.0f}" y="{my - 3:.0f}" font-size="10" text-anchor="middle" fill="#222" stroke="#fff" '
            f'stroke-width="3" paint-order="stroke">{escape(text)}</text>'
        )
    return out


def _node(p: tuple[float, float], r: dict) -> str:
    x, y = p
    fill, shape, words = ROLE_STYLE.get(r["role"], ROLE_STYLE["linked"])
    label = _node_label(r)
    score = f", score {r['score']:.2f}" if r["score"] is not None and r["visible"] else ""
    title = escape(f"{words}{score}" + ("" if r["visible"] else f", {r['bank_id'] or 'another bank'}: id not shown"))
    body = _shape(x, y, 13 if shape == "square" else 12, fill, shape, dashed=r["role"] == "hub", stroke="#222")
    shown = escape(r["account_id"]) if r["visible"] else ""
    body = f'<g class="node role-{escape(r["role"])}" data-account="{shown}">{body}<title>{title}</title></g>'
    if r["visible"] and r["alert_id"]:
        body = f'<a href="/alerts/{escape(r["alert_id"])}">{body}</a>'
    colour = "#222" if r["visible"] else "#868e96"
    return body + (
        f'<text x="{x:.0f}" y="{y + 27:.0f}" text-anchor="middle" font-size="11" fill="{colour}" stroke="#fff" '
        f'stroke-width="3" paint-order="stroke">{escape(label)}</text>'
    )


def weekly_bars_svg(weeks: pl.DataFrame, label: str, width: int = 900, height: int = 170) -> str:
    """Bars per week with a date axis and an amount axis."""
    if weeks.is_empty():
        return '<p class="muted">No money between the case\'s accounts in the window.</p>'
    left, right, top, bottom = 90, 10, 12, 34
    every_week = pl.DataFrame({"week": pl.date_range(weeks["week"].min(), weeks["week"].max(), "1w", eager=True)})
    weeks = every_week.join(weeks, on="week", how="left").with_columns(pl.col("amount", "n").fill_null(0))
    top_amount = max(float(weeks["amount"].max()), 1.0)
    n = weeks.height
    bw = (width - left - right) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(label)}" class="weekly">'
    ]
    base = height - bottom
    for frac in (0, 0.5, 1):
        y = base - frac * (base - top)
        parts.append(f'<line x1="{left}" y1="{y:.0f}" x2="{width - right}" y2="{y:.0f}" stroke="#dee2e6"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.0f}" font-size="10" text-anchor="end">{escape(eur(round(frac * top_amount)))}</text>'
        )
    for i, w in enumerate(weeks.iter_rows(named=True)):
        h = (base - top) * w["amount"] / top_amount
        x = left + i * bw
        parts.append(
            f'<rect x="{x + 2:.0f}" y="{base - h:.0f}" width="{max(bw - 4, 1):.0f}" height="{h:.0f}" fill="#1d3557">'
            f"<title>week of {w['week']:%Y-%m-%d}: {escape(eur(w['amount']))} in {w['n']} payments</title></rect>"
        )
        if n <= 16 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bw / 2:.0f}" y="{base + 14}" font-size="10" text-anchor="middle">{w["week"]:%d %b}</text>'
            )
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="10" fill="#555">week starting (Monday)</text></svg>')
    return "".join(parts)
