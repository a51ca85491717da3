"""Themes: an analyst's saved query over the unusual-transaction reports of a period, as a readable YAML file.

A theme is data, not code: analysts add one by dropping a YAML file in a folder (`--themes DIR`). Its SQL reads the
view `fiu_period` (the reports of the period, with `entity_kind` and the subject's `birth_year`) and returns at least
`subject_id` and `report_id`. Parameters are bound as `$name` (never pasted into the SQL), and so are `$period_start`
and `$period_end`. A theme whose SQL fails is reported in one line and the others still run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import yaml

SHIPPED = Path(__file__).resolve().parent / "themes"
REQUIRED = ("id", "name", "typology", "indicators", "sql")
RE_ID = re.compile(r"^[a-z][a-z0-9_]{2,60}$")
RE_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
RE_INDICATOR = re.compile(r"^(SE|LE|CE|CD|XB|ML|KYC)-\d{2}$")

# Kind of obliged entity from the reporting-entity id's prefix (the FIU's register of reporting entities, in short).
ENTITY_KINDS = {
    "BANK": "bank",
    "MTO": "money_transfer",
    "PI": "payment_institution",
    "CASINO": "casino",
    "CRYPTO": "crypto",
    "DEALER": "dealer",
    "LENDER": "lender",
    "TELCO": "telecom",
}


class ThemeError(ValueError):
    pass


@dataclass
class Theme:
    id: str
    name: str
    typology: str
    indicators: list[str]
    sql: str
    parameters: dict = field(default_factory=dict)
    description: str = ""
    enabled: bool = True
    path: str = ""

    def bound(self, period_start: date, period_end: date) -> dict:
        """The parameters the SQL names (DuckDB refuses unused ones), with the period."""
        values = {**self.parameters, "period_start": period_start, "period_end": period_end}
        names = set(RE_PARAM.findall(self.sql))
        missing = sorted(names - set(values))
        if missing:
            raise ThemeError(f"SQL names ${', $'.join(missing)} but parameters has no such value")
        return {k: values[k] for k in names}


def _check_param(theme_id: str, name: str, value) -> None:
    scalar = (int, float, str, bool)
    ok = isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
    if not ok:
        raise ThemeError(f"parameter {name!r} must be a number, a string or a list of them")


def _writes(sql: str) -> bool:
    """True when a SELECT holds a data-changing part (`WITH d AS (DELETE ... RETURNING ...) SELECT ...` is a SELECT to
    DuckDB's statement type): any DELETE, INSERT, UPDATE or MERGE node in its parse tree."""
    tree = json.loads(duckdb.connect().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if any(w in str(node.get("type", "")) for w in ("DELETE", "INSERT", "UPDATE", "MERGE")):
                return True
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return False


def load_theme(path: Path) -> Theme:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ThemeError(f"not readable YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ThemeError("not a mapping of theme fields")
    missing = [k for k in REQUIRED if not doc.get(k)]
    if missing:
        raise ThemeError(f"missing field(s) {', '.join(missing)}")
    if not RE_ID.match(str(doc["id"])):
        raise ThemeError(f"id {doc['id']!r} must be lower case letters, digits and _")
    inds = doc["indicators"] if isinstance(doc["indicators"], list) else [doc["indicators"]]
    bad = [i for i in inds if not RE_INDICATOR.match(str(i))]
    if bad:
        raise ThemeError(f"indicator(s) {', '.join(map(str, bad))} are not ids from the indicator catalogue (e.g. SE-08)")
    try:  # a theme reads the reports; it must never change the store (it runs where screen writes its results)
        kinds = [st.type for st in duckdb.extract_statements(str(doc["sql"]))]
    except duckdb.Error as e:
        raise ThemeError(f"sql does not parse: {str(e).splitlines()[0]}") from None
    if kinds != [duckdb.StatementType.SELECT] or _writes(str(doc["sql"])):
        raise ThemeError("sql must be one SELECT statement: a theme reads the reports, it never changes the store")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise ThemeError("parameters must be a mapping of name: value")
    for k, v in params.items():
        _check_param(doc["id"], k, v)
    return Theme(
        id=str(doc["id"]),
        name=str(doc["name"]),
        typology=str(doc["typology"]),
        indicators=[str(i) for i in inds],
        sql=str(doc["sql"]),
        parameters=params,
        description=str(doc.get("description") or "").strip(),
        enabled=bool(doc.get("enabled", True)),
        path=str(path),
    )


def load_themes(extra_dirs: list[str | Path] | None = None) -> tuple[list[Theme], list[str]]:
    """The shipped themes plus an analyst's folders (a later theme with the same id replaces an earlier one).
    Returns the themes and one line per file that could not be read."""
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for d in [SHIPPED, *(Path(x) for x in extra_dirs or [])]:
        if not Path(d).is_dir():
            problems.append(f"{d}: not a folder of theme files")
            continue
        for p in sorted(Path(d).glob("*.y*ml")):
            try:
                t = load_theme(p)
            except ThemeError as e:
                problems.append(f"theme file {p}: {e}")
                continue
            themes[t.id] = t
    return list(themes.values()), problems


def create_period_view(con: duckdb.DuckDBPyConnection, period_start: date, period_end: date) -> int:
    """`fiu_period`: the reports booked in the period (end inclusive, Amsterdam days), with the entity kind and birth year."""
    kinds = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ENTITY_KINDS.items())
    has_accounts = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'accounts'").fetchall()[0][0]
    by = (
        "LEFT JOIN (SELECT account_id, max(birth_year) AS birth_year FROM accounts GROUP BY 1) b USING (account_id)"
        if has_accounts
        else ""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fiu_period AS
        SELECT r.*, CASE split_part(upper(r.reporting_entity), '_', 1) {kinds} ELSE 'other' END AS entity_kind,
               {"b.birth_year" if has_accounts else "CAST(NULL AS INTEGER)"} AS birth_year
        FROM fiu_reports r {by}
        WHERE timezone('Europe/Amsterdam', r.booked_at)::DATE BETWEEN ? AND ?""",
        [period_start, period_end],
    )
    return con.execute("SELECT count(*) FROM fiu_period").fetchall()[0][0]


def run_theme(con: duckdb.DuckDBPyConnection, theme: Theme, period_start: date, period_end: date) -> pl.DataFrame:
    """One theme over `fiu_period`: distinct (subject_id, report_id). Raises ThemeError with DuckDB's first line."""
    try:
        # wrapped: DuckDB refuses a data-changing WITH below the top level, whatever load_theme missed
        df = con.sql(f"SELECT * FROM ({theme.sql}) AS theme", params=theme.bound(period_start, period_end)).pl()
    except duckdb.Error as e:
        raise ThemeError(str(e).splitlines()[0]) from None
    missing = [c for c in ("subject_id", "report_id") if c not in df.columns]
    if missing:
        raise ThemeError(f"the query returns no {', '.join(missing)} column (it must return subject_id and report_id)")
    return df.select(pl.col("subject_id").cast(pl.Utf8), pl.col("report_id").cast(pl.Utf8)).drop_nulls().unique()
