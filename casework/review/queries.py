"""What the review page reads from the store, always narrowed to the banks the user may see."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from casework.dispositions import LATEST_ALERTS
from casework.review.auth import User
from pipelines.casework_db import Casework
from schemas.settings import WindowSettings

STATUS_FILTERS = {
    "active": ("open", "info_requested"),
    "open": ("open",),
    "info_requested": ("info_requested",),
    "escalated": ("escalated",),
    "reported": ("reported",),
    "dismissed": ("dismissed",),
    "all": None,
}
PAGE = 50
MAX_PAGE = 1_000_000  # far beyond any queue; keeps OFFSET inside DuckDB's integers

LATEST = f"""WITH latest AS ({LATEST_ALERTS}),
                 first_seen AS (SELECT alert_id, min(created_at) AS opened_at FROM alerts GROUP BY 1)"""

WINDOW_DAYS = WindowSettings().days  # the default scoring window, defined once in schemas/settings.py


@dataclass
class QueueFilter:
    typology: str = ""
    bank: str = ""
    status: str = "active"
    min_score: float = 0.0
    page: int = 1

    @classmethod
    def from_params(cls, p) -> "QueueFilter | None":
        """The filter, or None when min_score or page is not a number in range (the page answers 400)."""
        try:
            score = float(p.get("min_score") or 0)
            page = int(p.get("page") or 1)
        except ValueError:
            return None
        if not (1 <= page <= MAX_PAGE) or score != score or abs(score) == float("inf"):
            return None
        status = p.get("status") or "active"
        return cls(p.get("typology") or "", p.get("bank") or "", status if status in STATUS_FILTERS else "active", score, page)

    def query(self, **changes) -> str:
        from urllib.parse import urlencode

        d = {
            "typology": self.typology,
            "bank": self.bank,
            "status": self.status,
            "min_score": self.min_score or "",
            "page": self.page,
        }
        d.update(changes)
        return urlencode({k: v for k, v in d.items() if v not in ("", None)})


def _scope(user: User, alias: str = "l") -> tuple[str, list]:
    return ("TRUE", []) if user.sees_all_banks else (f"{alias}.bank_id = ?", [user.bank])


def queue(con: duckdb.DuckDBPyConnection, user: User, f: QueueFilter, limit: int | None = PAGE) -> tuple[pl.DataFrame, int]:
    """The filtered queue, best first: one row per alert with its latest score and reasons."""
    scope, params = _scope(user)
    where = [scope, "l.score >= ?"]
    params = params + [f.min_score]
    if f.typology:
        where.append("l.typology = ?")
        params.append(f.typology)
    if f.bank:
        where.append("l.bank_id = ?")
        params.append(f.bank)
    statuses = STATUS_FILTERS[f.status]
    if statuses:
        where.append(f"s.status IN ({', '.join('?' for _ in statuses)})")
        params += list(statuses)
    base = f"""{LATEST}
        SELECT l.alert_id, l.bank_id, l.account_id, l.score, l.typology, l.reasons, l.case_id, l.case_role, s.status,
               o.opened_at, date_diff('day', o.opened_at, now()) AS age_days, l.evidence, l.rules
        FROM latest l JOIN alert_status s USING (alert_id) JOIN first_seen o USING (alert_id)
        WHERE {" AND ".join(where)}"""
    total = con.execute(f"SELECT count(*) FROM ({base})", params).fetchall()[0][0]
    page = f" LIMIT {int(limit)} OFFSET {int((f.page - 1) * limit)}" if limit else ""
    rows = con.sql(f"{base} ORDER BY l.score DESC, l.alert_id{page}", params=params).pl()
    offset = (f.page - 1) * (limit or 0)
    return rows.with_columns(pl.int_range(offset + 1, offset + 1 + pl.len()).alias("rank")), total


def filter_choices(con: duckdb.DuckDBPyConnection, user: User) -> dict:
    scope, params = _scope(user, "alerts")
    typ = [r[0] for r in con.execute(f"SELECT DISTINCT typology FROM alerts WHERE {scope} ORDER BY 1", params).fetchall()]
    banks = [r[0] for r in con.execute(f"SELECT DISTINCT bank_id FROM alerts WHERE {scope} ORDER BY 1", params).fetchall()]
    return {"typologies": typ, "banks": banks, "statuses": list(STATUS_FILTERS)}


def alert(con: duckdb.DuckDBPyConnection, user: User, alert_id: str) -> dict | None:
    """One alert as the user may see it, or None (unknown, or another bank's)."""
    scope, params = _scope(user)
    row = con.sql(
        f"""{LATEST}
        SELECT l.* EXCLUDE (status), s.status, s.dismiss_reason, s.reported_at, s.report_file, o.opened_at,
               a.customer_type, a.birth_year, a.opened_on, a.nationality, a.gender
        FROM latest l JOIN alert_status s USING (alert_id) JOIN first_seen o USING (alert_id)
        JOIN accounts a ON a.bank_id = l.bank_id AND a.account_id = l.account_id
        WHERE l.alert_id = ? AND {scope}""",
        params=[alert_id] + params,
    ).pl()
    return row.row(0, named=True) if row.height else None


def age_band(birth_year: int | None, year: int) -> str:
    if birth_year is None:
        return "-"
    age = year - birth_year
    for hi, band in ((17, "under 18"), (24, "18-24"), (34, "25-34"), (49, "35-49"), (64, "50-64")):
        if age <= hi:
            return band
    return "65+"


def window_end(con: duckdb.DuckDBPyConnection):
    return con.execute("SELECT max(booked_at) FROM transactions").fetchall()[0][0]


def timeline(
    con: duckdb.DuckDBPyConnection,
    bank_id: str,
    account_id: str,
    evidence: list[str],
    days: int = WINDOW_DAYS,
    limit: int | None = 400,
) -> pl.DataFrame:
    """The account's bookings in the window, newest first, evidence flagged."""
    lim = f"LIMIT {int(limit)}" if limit else ""
    return (
        con.sql(
            f"""
        SELECT txn_id, booked_at, direction, CAST(amount_eur AS DOUBLE) AS amount_eur, channel, counterparty_id, counterparty_type,
               counterparty_name, counterparty_country, location_city, description, list_contains(?, txn_id) AS evidence
        FROM transactions WHERE bank_id = ? AND account_id = ?
          AND booked_at > (SELECT max(booked_at) FROM transactions) - INTERVAL {int(days)} DAY
        ORDER BY evidence DESC, booked_at DESC {lim}""",
            params=[evidence or [], bank_id, account_id],
        )
        .pl()
        .sort("booked_at", descending=True)
    )


def counterparties(con: duckdb.DuckDBPyConnection, bank_id: str, account_id: str, days: int = WINDOW_DAYS) -> pl.DataFrame:
    return con.sql(
        f"""
        SELECT coalesce(counterparty_id, '(' || channel || ')') AS counterparty, any_value(counterparty_type) AS type,
               any_value(counterparty_name) FILTER (counterparty_type = 'business') AS name,
               coalesce(sum(amount_eur) FILTER (direction = 'credit'), 0) AS money_in,
               coalesce(sum(amount_eur) FILTER (direction = 'debit'), 0) AS money_out, count(*) AS bookings
        FROM transactions WHERE bank_id = ? AND account_id = ?
          AND booked_at > (SELECT max(booked_at) FROM transactions) - INTERVAL {int(days)} DAY
        GROUP BY 1 ORDER BY greatest(money_in, money_out) DESC LIMIT 12""",
        params=[bank_id, account_id],
    ).pl()


def network(
    con: duckdb.DuckDBPyConnection, user: User, account_id: str, days: int = WINDOW_DAYS, limit: int = 16
) -> pl.DataFrame:
    """Accounts linked to this one by money (either way, EUR 500+ or 3+ transfers), address, phone or device.

    Linked accounts of banks the user may not see are shown without their id or alert."""
    rows = con.sql(
        f"""
        WITH w AS (SELECT * FROM transactions WHERE booked_at > (SELECT max(booked_at) FROM transactions) - INTERVAL {int(days)} DAY),
             me AS (SELECT * FROM accounts WHERE account_id = ?),
             money AS (SELECT counterparty_id AS other, 'money ' || CASE WHEN direction = 'debit' THEN 'out' ELSE 'in' END AS link,
                              sum(amount_eur) AS amount, count(*) AS n
                       FROM w WHERE account_id = ? AND counterparty_id IN (SELECT account_id FROM accounts)
                         AND channel IN ('transfer', 'instant_transfer') GROUP BY ALL
                       HAVING sum(amount_eur) >= 500 OR count(*) >= 3),
             attr AS (SELECT a.account_id AS other, 'same address' AS link, NULL AS amount, NULL AS n FROM accounts a, me
                      WHERE a.address_id = me.address_id AND a.account_id <> me.account_id
                      UNION ALL
                      SELECT a.account_id, 'same phone', NULL, NULL FROM accounts a, me
                      WHERE a.phone_id = me.phone_id AND a.account_id <> me.account_id
                      UNION ALL
                      SELECT DISTINCT d.account_id, 'same device', NULL, NULL FROM w d
                      WHERE d.device_id IN (SELECT device_id FROM w WHERE account_id = ? AND device_id IS NOT NULL)
                        AND d.account_id <> ?),
             links AS (SELECT other, string_agg(DISTINCT link, ', ') AS links, sum(amount) AS amount, sum(n) AS n
                       FROM (SELECT * FROM money UNION ALL SELECT * FROM attr) GROUP BY 1),
             alerted AS (SELECT account_id, arg_max(alert_id, created_at) AS alert_id, arg_max(score, created_at) AS score,
                                arg_max(case_role, created_at) AS role FROM alerts GROUP BY 1)
        SELECT l.other, a.bank_id, l.links, l.amount, l.n, x.alert_id, x.score, x.role
        FROM links l JOIN (SELECT DISTINCT account_id, bank_id FROM accounts) a ON a.account_id = l.other
        LEFT JOIN alerted x ON x.account_id = l.other
        ORDER BY x.score DESC NULLS LAST, l.amount DESC NULLS LAST LIMIT {int(limit)}""",
        params=[account_id, account_id, account_id, account_id],
    ).pl()
    visible = pl.lit(True) if user.sees_all_banks else (pl.col("bank_id") == user.bank)
    return rows.with_columns(
        pl.when(visible).then(pl.col("other")).otherwise(pl.lit(None)).alias("other"),
        pl.when(visible).then(pl.col("alert_id")).otherwise(pl.lit(None)).alias("alert_id"),
        pl.when(visible).then(pl.col("score")).otherwise(pl.lit(None)).alias("score"),
    )


def history(con: duckdb.DuckDBPyConnection, alert_id: str) -> pl.DataFrame:
    return con.sql(
        """SELECT a.run_id, a.created_at, a.rank, a.score, a.typology, a.status AS run_status, array_length(a.rules) AS rules
                          FROM alerts a WHERE a.alert_id = ? ORDER BY a.created_at DESC""",
        params=[alert_id],
    ).pl()


def case_members(con: duckdb.DuckDBPyConnection, user: User, case_id: str | None, alert_id: str) -> pl.DataFrame:
    if not case_id:
        return pl.DataFrame()
    scope, params = _scope(user)
    return con.sql(
        f"""{LATEST}
        SELECT l.alert_id, l.bank_id, l.account_id, l.score, l.typology, l.case_role, s.status
        FROM latest l JOIN alert_status s USING (alert_id)
        WHERE l.case_id = ? AND l.alert_id <> ? AND {scope} ORDER BY l.score DESC""",
        params=[case_id, alert_id] + params,
    ).pl()


def audit_entries(cw: Casework, user: User, alert_id: str | list[str] | None = None, limit: int = 200) -> pl.DataFrame:
    """The newest audit entries the user may see (live from the casework database), for one alert, a list or all."""
    return cw.audit_entries(None if user.sees_all_logs else user.bank, alert_id, limit)
