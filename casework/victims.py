"""Protection for likely victims: an account whose likely role in its case is victim is shown with the evidence needed
to judge the case (amounts, times, channels, evidence flags, reasons) but without its counterparties and free text,
until an investigator asks to see them with a reason (logged in the access log, casework/access_log.py). Exports of a
victim state the role and leave the protected columns out.
"""

from __future__ import annotations

import polars as pl

VICTIM_ROLES = ("victim",)
PROTECTED_COLUMNS = ("counterparty_id", "counterparty_name", "description")  # who they deal with, and what they wrote
HIDDEN = "(protected: likely victim)"
MAX_REASON = 500


def is_victim(alert: dict) -> bool:
    return (alert.get("case_role") or "") in VICTIM_ROLES


def hide(bookings: pl.DataFrame) -> pl.DataFrame:
    """The bookings with counterparties and free text blanked (columns kept, so pages and pictures still work)."""
    present = [c for c in PROTECTED_COLUMNS if c in bookings.columns]
    return bookings.with_columns(pl.lit(None, pl.Utf8).alias(c) for c in present)


def for_export(bookings: pl.DataFrame, alert: dict) -> pl.DataFrame:
    """An alert's bookings as a CSV carries them: with the account's case role, and for a victim without the protected
    columns (an export leaves the page's reveal behind)."""
    out = bookings.with_columns(pl.lit(alert.get("case_role"), pl.Utf8).alias("case_role"))
    return out.drop([c for c in PROTECTED_COLUMNS if c in out.columns]) if is_victim(alert) else out


def reveal_reason(text: str | None) -> str | None:
    """The reason an investigator gives for seeing a victim's protected details; None when there is none."""
    reason = " ".join((text or "").split())[:MAX_REASON]
    return reason if len(reason) >= 10 else None
