"""Numbers, ages, ids and long text as people read them, one way across the review site (pages, pictures, CSV stay raw):
EUR 22,828 everywhere, account ages in years and months, short ids, reasons clipped at a word with an ellipsis."""

from __future__ import annotations

import re
from datetime import date, datetime


def eur(v) -> str:
    """EUR 22,828 for whole euros, EUR 1,025.40 when there are cents: one thousands separator everywhere."""
    if v is None:
        return "-"
    v = round(float(v), 2)
    if v == int(v):
        return f"EUR {v:,.0f}"
    return f"EUR {v:,.2f}"


_EUR_IN_TEXT = re.compile(r"EUR (\d{4,})(?:\.(\d+))?")


def tidy_amounts(text: str | None) -> str:
    """Amounts inside reason text written the same way as the page's own ('EUR 22828' -> 'EUR 22,828')."""
    if not text:
        return ""
    return _EUR_IN_TEXT.sub(lambda m: eur(float(m.group(1) + ("." + m.group(2) if m.group(2) else ""))), text)


def age(opened: date | datetime | None, today: date | datetime | None) -> str:
    """How long ago, in years and months (days only under a month)."""
    if opened is None or today is None:
        return "-"
    a = opened.date() if isinstance(opened, datetime) else opened
    b = today.date() if isinstance(today, datetime) else today
    months = (b.year - a.year) * 12 + (b.month - a.month) - (b.day < a.day)
    if months < 1:
        days = (b - a).days
        return f"{days} day{'s' if days != 1 else ''}"
    years, months = divmod(months, 12)
    out = []
    if years:
        out.append(f"{years} year{'s' if years != 1 else ''}")
    if months:
        out.append(f"{months} month{'s' if months != 1 else ''}")
    return " ".join(out)


def clip(text: str | None, limit: int = 140) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis (the full text goes in a title)."""
    text = text or ""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def short_account(account_id: str | None) -> str:
    """Pseudonymous account ids are 32 hex characters; the first 8 tell them apart on a page."""
    return "" if not account_id else str(account_id)[:8]


def short_id(alert_or_case_id: str | None) -> str:
    """A run-based id as people read it: 'run-20261201T050325-c97047-00001' -> 'A-261201-00001' ('C-...' for a case)."""
    if not alert_or_case_id:
        return ""
    m = re.fullmatch(r"(C-)?run-\d{2}(\d{6})T\d{6}-\w+-(\d+)", alert_or_case_id)
    if not m:
        return alert_or_case_id if len(alert_or_case_id) <= 18 else alert_or_case_id[:16] + "…"
    return f"{'C' if m.group(1) else 'A'}-{m.group(2)}-{m.group(3)}"
