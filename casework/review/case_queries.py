"""What the case pages read from the store: cases ranked for investigators, one case's network, its money over time and
the proceeds picture of its likely controllers and employers. Always narrowed with the queue's own scope function: an
investigator sees a case when one of its alerts is their bank's, and another bank's accounts only without their ids.

A case's score ranks organised activity above single accounts (indicators.md section 6: rank clusters, victims are not
the subject): the best member score, raised towards 1 by corroboration across accounts, banks, typologies and
indicators, and by the money moved inside the case:
    score = top + (1 - top) * (0.35 * accounts + 0.15 * banks + 0.1 * typologies + 0.1 * rules + 0.3 * money)
with each term in 0..1: accounts (n - 1) / 4, banks (n - 1), typologies (n - 1) / 2, distinct rules (n - 1) / 8, money
moved inside EUR / 25,000 (each capped at 1). A lone account keeps its own score.
"""

from __future__ import annotations

import duckdb
import polars as pl

from casework.review.auth import User
from casework.review.queries import LATEST, STATUS_FILTERS, WINDOW_DAYS, QueueFilter, _scope
from detectors.rules.base import RENT_WORDS
from detectors.window import CATEGORIES, category_sql
from schemas.settings import CaseSettings

CASE_PAGE = 50
_CASES = CaseSettings()  # a money link counts as cases.py counts it (EUR 500+ or 3+ transfers)
LEAD_ROLES = ("controller", "employer")
ROLE_ORDER = {"controller": 0, "employer": 1, "hub": 2, "linked": 3, "mule": 4, "victim": 5}
CORROBORATION = {"accounts": (0.35, 4), "banks": (0.15, 1), "typologies": (0.1, 2), "rules": (0.1, 8)}
MONEY_WEIGHT, MONEY_FULL_EUR = 0.3, 25_000
MONEY_CHANNELS = ("transfer", "instant_transfer", "money_remittance", "direct_debit", "wallet")
PROCEEDS_KINDS = ("cash", "crypto", "luxury", "property and rent", "abroad", "back into the case", "other")


# A case as the user may name it (bound: whether they see every bank): as case_label in app.py, with the store's secret
# the review sets on its connection (Review.db); without it every reference is NULL and names no case.
CASE_REF = "CASE WHEN ? THEN l.case_id ELSE 'C-' || sha256(getvariable('case_ref_key') || l.case_id)[1:12] END"


def members(con: duckdb.DuckDBPyConnection, user: User, case_id: str | None = None) -> pl.DataFrame:
    """The latest row of every alert that belongs to a case the user may see, with `visible` (their bank's) and `ref`
    (the case as this user may name it: analysts the id, investigators its hash, as case_label in app.py)."""
    scope, params = _scope(user)
    where, extra = ("l.case_id = ?", [case_id]) if case_id else ("l.case_id IS NOT NULL", [])
    rows = con.sql(
        f"""{LATEST}
        SELECT l.alert_id, l.bank_id, l.account_id, l.score, l.typology, l.reasons, l.rules, l.evidence, l.case_id,
               coalesce(l.case_role, 'linked') AS case_role, s.status, o.opened_at, ({scope}) AS visible,
               {CASE_REF} AS ref
        FROM latest l JOIN alert_status s USING (alert_id) JOIN first_seen o USING (alert_id)
        WHERE {where}""",
        params=params + [user.sees_all_banks] + extra,
    ).pl()
    seen = rows.filter(pl.col("visible"))["case_id"].unique()
    return rows.filter(pl.col("case_id").is_in(seen.implode()))


def _case_money(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(
        """SELECT case_id, arg_max(money_eur, created_at) AS money_eur, arg_max(typology, created_at) AS case_typology
           FROM cases GROUP BY 1"""
    ).pl()


def _capped(col: str, per: float) -> pl.Expr:
    return ((pl.col(col) - 1) / per).clip(0, 1)


def ranked_cases(
    con: duckdb.DuckDBPyConnection, user: User, f: QueueFilter, limit: int | None = CASE_PAGE
) -> tuple[pl.DataFrame, int]:
    """One row per case the user may see, best first, with its leads (controllers and employers first) and status counts."""
    m = members(con, user)
    if m.is_empty():
        return pl.DataFrame(), 0
    active = list(STATUS_FILTERS["active"])
    m = m.with_columns(
        pl.col("case_role").replace_strict(ROLE_ORDER, default=9).alias("role_rank"),
        pl.when(pl.col("visible")).then(pl.col("account_id")).alias("shown_account"),
        pl.when(pl.col("visible")).then(pl.col("alert_id")).alias("shown_alert"),
    ).sort("role_rank", pl.col("score"), descending=[False, True])
    vis = pl.col("visible")
    cases = m.group_by("case_id", maintain_order=True).agg(
        pl.col("ref").first(),
        pl.len().alias("accounts"),
        pl.col("bank_id").unique().sort().alias("banks"),
        pl.col("score").max().alias("top_score"),
        pl.col("typology").n_unique().alias("typologies"),
        pl.col("typology").mode().first().alias("member_typology"),
        pl.col("rules").explode().drop_nulls().n_unique().alias("rules"),
        pl.col("opened_at").min(),
        pl.col("case_role").alias("roles"),
        pl.col("shown_account").alias("lead_accounts"),
        pl.col("shown_alert").alias("lead_alerts"),
        pl.col("bank_id").alias("lead_banks"),
        (vis & pl.col("status").is_in(active)).sum().alias("n_active"),
        *[(vis & (pl.col("status") == s)).sum().alias(f"n_{s}") for s in ("open", "info_requested", "escalated", "reported")],
        (vis & (pl.col("status") == "dismissed")).sum().alias("n_dismissed"),
        vis.sum().alias("n_visible"),
    )
    cases = cases.join(_case_money(con), on="case_id", how="left").with_columns(
        pl.col("money_eur").fill_null(0.0), pl.coalesce("case_typology", "member_typology").alias("typology")
    )
    cases = cases.with_columns(pl.col("banks").list.len().alias("n_banks"))
    sizes = {"accounts": "accounts", "banks": "n_banks", "typologies": "typologies", "rules": "rules"}
    corr = sum(w * _capped(sizes[k], per) for k, (w, per) in CORROBORATION.items()) + MONEY_WEIGHT * (
        pl.col("money_eur") / MONEY_FULL_EUR
    ).clip(0, 1)
    cases = cases.with_columns((pl.col("top_score") + (1 - pl.col("top_score")) * corr).alias("case_score"))
    if f.typology:
        cases = cases.filter(pl.col("typology") == f.typology)
    if f.bank:
        cases = cases.filter(pl.col("banks").list.contains(f.bank))
    cases = cases.filter(pl.col("case_score") >= f.min_score)
    cases = cases.filter(_status_filter(f.status))
    cases = cases.sort(["case_score", "case_id"], descending=[True, False])
    total = cases.height
    offset = (f.page - 1) * (limit or 0)
    page = cases.slice(offset, limit) if limit else cases
    return page.with_columns(pl.int_range(offset + 1, offset + 1 + pl.len()).alias("rank")), total


def _status_filter(status: str) -> pl.Expr:
    if status == "all":
        return pl.lit(True)
    if status == "active":
        return pl.col("n_active") > 0
    if status == "dismissed":
        return (pl.col("n_dismissed") > 0) & (pl.col("n_dismissed") == pl.col("n_visible"))
    return pl.col(f"n_{status}") > 0


def resolve(con: duckdb.DuckDBPyConnection, user: User, ref: str) -> str | None:
    """The case id behind a case reference as this user names it, or None (unknown, or no alert of theirs in it)."""
    scope, params = _scope(user)
    rows = con.sql(
        f"""{LATEST}
        SELECT DISTINCT l.case_id FROM latest l
        WHERE l.case_id IS NOT NULL AND {scope} AND ({CASE_REF}) = ?""",
        params=params + [user.sees_all_banks, ref],
    ).fetchall()
    return rows[0][0] if rows else None


def _window(days: int) -> str:
    return f"booked_at > (SELECT max(booked_at) FROM transactions) - INTERVAL {int(days)} DAY"


def network(con: duckdb.DuckDBPyConnection, user: User, m: pl.DataFrame, days: int = WINDOW_DAYS, hubs: int = 6):
    """The case as a graph: its accounts, the unalerted accounts two or more of them pay or are paid by (the controller
    that victims pass money to), money edges between them (direction, amount, count) and the shared address, phone or
    device keys. Returns (nodes, money edges, shared edges); accounts of other banks carry no id."""
    ids = m["account_id"].to_list()
    in_window = _window(days)
    chans = list(MONEY_CHANNELS)
    hub = con.sql(
        f"""WITH pair AS (SELECT account_id, counterparty_id, sum(amount_eur) AS amount, count(*) AS n
                          FROM transactions WHERE {in_window} AND list_contains(?, account_id) AND counterparty_id IS NOT NULL
                            AND counterparty_type = 'person' AND NOT list_contains(?, counterparty_id)
                            AND list_contains(?, channel)
                          GROUP BY 1, 2 HAVING sum(amount_eur) >= ? OR count(*) >= ?)
            SELECT counterparty_id AS account_id, count(*) AS members, sum(amount) AS amount FROM pair
            GROUP BY 1 HAVING count(*) >= 2 ORDER BY members DESC, amount DESC LIMIT {int(hubs)}""",
        params=[ids, ids, chans, _CASES.min_eur, _CASES.min_transfers],
    ).pl()
    node_ids = ids + hub["account_id"].to_list()
    edges = con.sql(
        f"""WITH t AS (SELECT * FROM transactions WHERE {in_window} AND list_contains(?, channel)),
                 e AS (SELECT account_id AS src, counterparty_id AS dst, amount_eur, booked_at FROM t
                       WHERE direction = 'debit' AND list_contains(?, account_id) AND list_contains(?, counterparty_id)
                       UNION ALL
                       SELECT counterparty_id, account_id, amount_eur, booked_at FROM t
                       WHERE direction = 'credit' AND list_contains(?, account_id) AND list_contains(?, counterparty_id)
                         AND counterparty_id NOT IN (SELECT account_id FROM transactions WHERE {in_window} AND list_contains(?, account_id)))
            SELECT src, dst, CAST(sum(amount_eur) AS DOUBLE) AS amount, count(*) AS n, min(booked_at) AS first, max(booked_at) AS last
            FROM e WHERE src <> dst GROUP BY 1, 2 ORDER BY amount DESC""",
        params=[chans, node_ids, node_ids, node_ids, node_ids, node_ids],
    ).pl()
    shared = con.sql(
        f"""WITH k AS (SELECT DISTINCT account_id, 'address' AS kind, address_id AS key FROM accounts
                       WHERE list_contains(?, account_id) AND address_id IS NOT NULL
                       UNION SELECT DISTINCT account_id, 'phone', phone_id FROM accounts
                       WHERE list_contains(?, account_id) AND phone_id IS NOT NULL
                       UNION SELECT DISTINCT account_id, 'device', device_id FROM transactions
                       WHERE {in_window} AND list_contains(?, account_id) AND device_id IS NOT NULL)
            SELECT kind, key, list(DISTINCT account_id ORDER BY account_id) AS accounts FROM k
            GROUP BY 1, 2 HAVING count(DISTINCT account_id) >= 2 ORDER BY 1, 2""",
        params=[node_ids, node_ids, node_ids],
    ).pl()
    known = con.sql(
        "SELECT account_id, any_value(bank_id) AS bank_id FROM accounts WHERE list_contains(?, account_id) GROUP BY 1",
        params=[hub["account_id"].to_list()],
    ).pl()
    hub = hub.join(known, on="account_id", how="left")
    mine = pl.lit(True) if user.sees_all_banks else pl.col("bank_id").is_null() | (pl.col("bank_id") == user.bank)
    nodes = pl.concat(
        [
            m.select("account_id", "bank_id", "alert_id", "score", pl.col("case_role").alias("role"), pl.col("visible")),
            hub.select(
                "account_id",
                pl.col("bank_id").cast(pl.Utf8),
                pl.lit(None, pl.Utf8).alias("alert_id"),
                pl.lit(None, pl.Float64).alias("score"),
                pl.lit("hub").alias("role"),
                mine.alias("visible"),
            ),
        ]
    )
    return nodes, edges, shared


def money_over_time(edges_src: pl.DataFrame, con: duckdb.DuckDBPyConnection, node_ids: list[str], days: int = WINDOW_DAYS):
    """Money between the case's accounts per week (debits, or credits whose payer is not in the store)."""
    in_window = _window(days)
    return con.sql(
        f"""WITH t AS (SELECT * FROM transactions WHERE {in_window} AND list_contains(?, channel)),
                 e AS (SELECT amount_eur, booked_at FROM t WHERE direction = 'debit' AND list_contains(?, account_id)
                         AND list_contains(?, counterparty_id)
                       UNION ALL
                       SELECT amount_eur, booked_at FROM t WHERE direction = 'credit' AND list_contains(?, account_id)
                         AND list_contains(?, counterparty_id)
                         AND counterparty_id NOT IN (SELECT account_id FROM transactions WHERE {in_window} AND list_contains(?, account_id)))
            SELECT CAST(date_trunc('week', booked_at) AS DATE) AS week, CAST(sum(amount_eur) AS DOUBLE) AS amount, count(*) AS n
            FROM e GROUP BY 1 ORDER BY 1""",
        params=[list(MONEY_CHANNELS), node_ids, node_ids, node_ids, node_ids, node_ids],
    ).pl()


def proceeds(con: duckdb.DuckDBPyConnection, leads: list[str], case_accounts: list[str], days: int = WINDOW_DAYS) -> pl.DataFrame:
    """Per lead account (likely controller, employer, or the unalerted account victims pay) and week: the money in from
    the case's other accounts, and where its money went (cash, crypto, luxury, property and rent, abroad by country, back
    into the case, other). One row per lead, week, flow, kind and country."""
    if not leads:
        return pl.DataFrame(
            schema={
                "account_id": pl.Utf8,
                "week": pl.Date,
                "flow": pl.Utf8,
                "kind": pl.Utf8,
                "country": pl.Utf8,
                "amount": pl.Float64,
                "bookings": pl.Int64,
            }
        )
    cat, cat_params = category_sql({k: CATEGORIES[k] for k in ("vasp", "luxury")})
    in_window = _window(days)
    return con.sql(
        f"""WITH t AS (SELECT t.*, {cat} AS category FROM transactions t WHERE {in_window} AND list_contains(?, t.account_id)),
                 k AS (SELECT account_id, CAST(date_trunc('week', booked_at) AS DATE) AS week,
                              CASE WHEN direction = 'credit' THEN 'in from the case' ELSE 'out' END AS flow,
                              CASE WHEN direction = 'credit' THEN 'from victims or workers'
                                   WHEN channel = 'cash_withdrawal' THEN 'cash'
                                   WHEN category = 'vasp' THEN 'crypto'
                                   WHEN category = 'luxury' THEN 'luxury'
                                   WHEN mcc = '6513' OR regexp_matches(coalesce(description, ''), ?) THEN 'property and rent'
                                   WHEN coalesce(counterparty_country, 'NL') <> 'NL' THEN 'abroad'
                                   WHEN list_contains(?, counterparty_id) THEN 'back into the case'
                                   ELSE 'other' END AS kind,
                              CASE WHEN direction = 'debit' AND coalesce(counterparty_country, 'NL') <> 'NL'
                                   THEN counterparty_country END AS country,
                              amount_eur
                       FROM t WHERE direction = 'debit' OR (list_contains(?, counterparty_id) AND counterparty_id <> account_id))
            SELECT account_id, week, flow, kind, country, CAST(sum(amount_eur) AS DOUBLE) AS amount, count(*) AS bookings
            FROM k GROUP BY ALL ORDER BY account_id, week, flow, kind, country""",
        params=cat_params + [leads, RENT_WORDS, case_accounts, case_accounts],
    ).pl()
