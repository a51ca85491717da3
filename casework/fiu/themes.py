"""Themes: an analyst's saved query over the unusual-transaction reports of a period, as a readable YAML file.

A theme is data, not code: analysts add one by dropping a YAML file in a folder (`--themes DIR`). Its SQL reads the
view `fiu_period` (the reports of the period, with `entity_kind` and the subject's `birth_year`) and returns at least
`subject_id` and `report_id`. Parameters are bound as `$name` (never pasted into the SQL), and so are `$period_start`
and `$period_end`. A theme whose SQL fails is reported in one line and the others still run.

A theme reaches nothing but `fiu_period`: load_theme refuses SQL that names another table, a file or URL (`FROM 'x.csv'`)
or a table function (read_csv, glob, query, ...), and run_theme runs it in a separate in-memory DuckDB holding only a
copy of `fiu_period`, with external access off, so whatever the check misses still reaches no file, URL or store table.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import yaml

from casework.dispositions import RE_TYPOLOGY
from schemas import strict_yaml

SHIPPED = Path(__file__).resolve().parent / "themes"
THEME_SECONDS = 900  # a theme still running after this is stopped and reported, the others run
REQUIRED = ("id", "name", "typology", "indicators", "sql")
OPTIONAL = ("parameters", "description", "enabled")
RE_ID = re.compile(r"^[a-z][a-z0-9_]{2,60}$")
RE_INDICATOR = re.compile(r"^(SE|LE|CE|CD|XB|ML|KYC)-\d{2}$")
# Table functions that only make rows (no file, URL, catalog or SQL string behind them); every other one is refused.
PURE_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}
# Names of functions that read files or run SQL text, refused wherever they are called (an extension may add scalar ones).
RE_READER = re.compile(r"^(read_|glob$|sniff_|parquet_|.*_scan$|query(_table)?$|json_execute_serialized_sql$)", re.IGNORECASE)
# Id types of a subject_id or report_id column that read as an id once cast to text; a list or struct does not.
ID_TYPES = set("varchar null tinyint smallint integer bigint hugeint utinyint usmallint uinteger ubigint uhugeint".split())

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
        """The parameters the SQL names (DuckDB refuses unused ones), with the period. Read from the parse tree: a `$x`
        in a comment or a string is no parameter."""
        values = {**self.parameters, "period_start": period_start, "period_end": period_end}
        names = _param_names(_parse_tree(self.sql))
        missing = sorted(names - set(values))
        if missing:
            raise ThemeError(f"SQL names ${', $'.join(missing)} but parameters has no such value")
        return {k: values[k] for k in names}


def _check_param(theme_id: str, name: str, value) -> None:
    scalar = (int, float, str, bool)
    ok = isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
    if not ok:
        raise ThemeError(f"parameter {name!r} must be a number, a string or a list of them")
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):  # `amount <= NaN` is never false in DuckDB
        raise ThemeError(f"parameter {name!r} must be a finite number, not {value!r}")


def _parse_tree(sql: str) -> dict:
    """DuckDB's own parse tree of the SQL (json_serialize_sql), for the checks below: no regex guesses at SQL."""
    with duckdb.connect() as con:
        return json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])


def _nodes(tree):
    """Every mapping in a parse tree, depth first."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            yield node
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)


def _writes(tree: dict) -> bool:
    """True when a SELECT holds a data-changing part (`WITH d AS (DELETE ... RETURNING ...) SELECT ...` is a SELECT to
    DuckDB's statement type): any DELETE, INSERT, UPDATE or MERGE node in its parse tree."""
    return any(w in str(n.get("type", "")) for n in _nodes(tree) for w in ("DELETE", "INSERT", "UPDATE", "MERGE"))


def _param_names(tree: dict) -> set[str]:
    return {str(n.get("identifier")) for n in _nodes(tree) if n.get("class") == "PARAMETER"}


def _reaches(tree: dict) -> str | None:
    """What the SQL reads besides `fiu_period` and its own WITH tables, or None. A table name may be a file or URL to
    DuckDB (`FROM '/etc/passwd.csv'`), so every table is checked against the WITH names in scope where it is used."""
    todo = [(tree, frozenset({"fiu_period"}))]
    while todo:
        node, names = todo.pop()
        if isinstance(node, list):
            todo.extend((n, names) for n in node)
            continue
        if not isinstance(node, dict):
            continue
        ctes = node.get("cte_map")
        if isinstance(ctes, dict):  # a WITH name is visible in its own query, the later ones and below, not beside it
            seen = names
            for cte in [c for c in ctes.get("map") or [] if isinstance(c, dict)]:
                seen = seen | {str(cte.get("key", "")).lower()}
                todo.append((cte.get("value"), seen))
            node, names = {k: v for k, v in node.items() if k != "cte_map"}, seen
        kind = node.get("type")
        if kind == "BASE_TABLE":
            path = ".".join(str(p) for p in (node.get("qualified_name") or {}).get("path") or [node.get("table_name")])
            if node.get("catalog_name") or node.get("schema_name") or str(node.get("table_name", "")).lower() not in names:
                return f"reads {path!r}"
        elif kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            name = str(fn.get("function_name", ""))
            if fn.get("catalog") or fn.get("schema") or name.lower() not in PURE_TABLE_FUNCTIONS:
                return f"calls the table function {name}()"
        elif kind == "SHOW_REF":
            return "uses SHOW, DESCRIBE or SUMMARIZE"
        elif node.get("class") == "FUNCTION" and RE_READER.match(str(node.get("function_name", ""))):
            return f"calls {node['function_name']}()"
        todo.extend((v, names) for v in node.values())
    return None


def _check_sql(sql: str) -> None:
    """One SELECT that changes nothing and reads only `fiu_period` (it runs where screen writes its results)."""
    try:
        kinds = [st.type for st in duckdb.extract_statements(sql)]
    except duckdb.Error as e:
        raise ThemeError(f"sql does not parse: {str(e).splitlines()[0]}") from None
    tree = _parse_tree(sql) if kinds == [duckdb.StatementType.SELECT] else {}
    if not tree or tree.get("error") or _writes(tree):
        raise ThemeError("sql must be one SELECT statement: a theme reads the reports, it never changes the store")
    reach = _reaches(tree)
    if reach:
        raise ThemeError(f"sql {reach}: a theme reads only fiu_period and its own WITH tables, never files, URLs or other tables")


def load_theme(path: Path) -> Theme:
    """The theme in one YAML file; anything wrong with it (including a folder or an unreadable file by that name) is a
    ThemeError of one line, so load_themes can report it and load the others."""
    try:
        return _load_theme(path)
    except RecursionError:
        raise ThemeError("nested too deeply to read") from None


def _load_theme(path: Path) -> Theme:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ThemeError(f"not readable YAML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise ThemeError(f"cannot be read: {e.strerror or e}") from None
    try:
        doc = strict_yaml.load(text)
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a YAML date that is no date (2026-02-30)
        raise ThemeError(f"not readable YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ThemeError("not a mapping of theme fields")
    missing = [k for k in REQUIRED if not doc.get(k)]
    if missing:
        raise ThemeError(f"missing field(s) {', '.join(missing)}")
    unknown = [str(k)[:40] for k in doc if k not in REQUIRED + OPTIONAL]
    if unknown:  # `paramters:` was ignored, and the theme ran without its parameters
        raise ThemeError(f"unknown field(s) {', '.join(unknown)}; a theme has {', '.join(REQUIRED + OPTIONAL)}")
    if not isinstance(doc["typology"], str) or not RE_TYPOLOGY.fullmatch(doc["typology"]):  # decisions' typologies alike
        raise ThemeError("typology must be one lower-case word such as sexual_exploitation or cross_border")
    if not RE_ID.match(str(doc["id"])):
        raise ThemeError(f"id {doc['id']!r} must be lower case letters, digits and _")
    inds = doc["indicators"] if isinstance(doc["indicators"], list) else [doc["indicators"]]
    bad = [i for i in inds if not RE_INDICATOR.match(str(i))]
    if bad:
        raise ThemeError(f"indicator(s) {', '.join(map(str, bad))} are not ids from the indicator catalogue (e.g. SE-08)")
    _check_sql(str(doc["sql"]))
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):  # bool("false") is True: a quoted false would still run
        raise ThemeError(f"enabled must be true or false (unquoted), not {enabled!r}")
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
        enabled=enabled,
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
        here: dict[str, Path] = {}
        for p in sorted(Path(d).glob("*.y*ml")):
            try:
                t = load_theme(p)
            except ThemeError as e:
                problems.append(f"theme file {p}: {e}")
                continue
            if t.id in here:  # within one folder two files with one id is a mistake; a later folder's replaces on purpose
                problems.append(f"theme file {p}: id {t.id} is also the id of {here[t.id].name}; not loaded")
                continue
            here[t.id] = p
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


def sandbox(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB holding only a copy of `con`'s `fiu_period`, with external access off: theme SQL run there
    reaches no file, URL, extension or store table. Its own database, because DuckDB cannot switch external access back
    on, and the store's connection goes on to write results and publish."""
    settings = dict(
        con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN ('TimeZone', 'memory_limit')").fetchall()
    )
    box = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "temp_directory": str(_spill_folder(con)),
        },
    )
    try:
        for name, value in settings.items():  # same day boundaries and memory cap as the store's connection
            box.execute(f"SET {name} = ?", [value])
        box.register("fiu_period", con.sql("SELECT * FROM fiu_period").to_arrow_table())
    except BaseException:
        box.close()
        raise
    return box


def _spill_folder(con: duckdb.DuckDBPyConnection) -> Path:
    """Where the sandbox spills when a theme needs more than its memory: a private folder in the store's own temp
    folder (DuckDB's default, .tmp in the working folder, is neither the store's nor private)."""
    from pipelines import store

    base = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] or "")
    if not base.is_absolute():  # an in-memory store's: a private folder of this process under the system's temp
        import tempfile

        base = Path(tempfile.gettempdir()) / f"thb-signals-{os.getuid()}"
    store.private_dir(base)
    return store.private_dir(base / "themes")


def _closed_off(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0] is False


def _one_statement(sql: str) -> str:
    """The SQL without trailing semicolons (and the comments after them), so that it can be wrapped in a subquery."""
    end = len(sql)
    for pos, kind in reversed(duckdb.tokenize(sql)):
        if kind == duckdb.token_type.comment:
            continue
        if kind == duckdb.token_type.operator and sql[pos] == ";":
            end = pos
            continue
        break
    return sql[:end]


def run_theme(
    con: duckdb.DuckDBPyConnection, theme: Theme, period_start: date, period_end: date, seconds: float = THEME_SECONDS
) -> pl.DataFrame:
    """One theme over `fiu_period`: distinct (subject_id, report_id). Raises ThemeError with DuckDB's first line.
    Runs in `con` when it is a sandbox (screen makes one for all themes), else in a sandbox of its own; stopped after
    `seconds` (a runaway query would otherwise hold the store's write lock for as long as it ran)."""
    box = con if _closed_off(con) else sandbox(con)
    timer = threading.Timer(seconds, box.interrupt)
    timer.start()
    try:
        # wrapped on lines of its own (a trailing `-- comment` must not swallow the wrapper); DuckDB also refuses a
        # data-changing WITH below the top level, whatever load_theme missed
        rel = box.sql(f"SELECT * FROM (\n{_one_statement(theme.sql)}\n) AS theme", params=theme.bound(period_start, period_end))
        types = {c: t.id for c, t in zip(rel.columns, rel.types)}
        missing = [c for c in ("subject_id", "report_id") if c not in types]
        if missing:
            raise ThemeError(f"the query returns no {', '.join(missing)} column (it must return subject_id and report_id)")
        for c in ("subject_id", "report_id"):
            if types[c] not in ID_TYPES:  # a list would cast to '[...]' text, or abort screening when stored
                raise ThemeError(f"{c} must be text, not {rel.types[rel.columns.index(c)]}")
        return (
            rel.project("CAST(subject_id AS VARCHAR) AS subject_id, CAST(report_id AS VARCHAR) AS report_id")
            .filter("subject_id IS NOT NULL AND report_id IS NOT NULL")
            .distinct()
            .pl()
        )
    except duckdb.InterruptException:
        raise ThemeError(f"ran longer than {seconds:g} s and was stopped") from None
    except duckdb.Error as e:
        raise ThemeError(str(e).splitlines()[0]) from None
    finally:
        timer.cancel()
        if box is not con:
            box.close()
