"""Check a submission against the contract, row by row, inside DuckDB.

Why DuckDB and not Great Expectations for the row checks: GX 1.x validates pandas frames only,
which would hold a 10-million-row extract in memory. The files are instead staged into DuckDB
tables (DuckDB streams the read and spills to disk), and every check in `schemas.contract` is
compiled to one SQL predicate that finds the failing rows. The same check list also builds the
GX suite (`schemas.gx_suite`), which runs on a bounded sample for the report; both come from one
definition, so they cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

import duckdb

from pipelines.submission import Submission, SubmissionRejected, manifest_rows, open_submission
from schemas import contract
from schemas.codes import IBAN_LENGTHS
from schemas.contract import Check

EXAMPLES = 5
PERIOD_TZ = contract.PERIOD_TZ
RE_IBAN_SHAPE = r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}"
RE_EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
RE_PHONE = r"(\+|00)[1-9][0-9 \-]{7,16}|0[1-9][0-9]{8}"

_MACROS = """
CREATE OR REPLACE TEMP MACRO iban_mod97(s) AS (
  list_reduce(list_transform(string_split(array_to_string(list_transform(
      string_split(substr(s, 5) || substr(s, 1, 4), ''),
      lambda c: CASE WHEN c >= 'A' THEN CAST(ascii(c) - 55 AS VARCHAR) ELSE c END), ''), ''),
    lambda c: CAST(c AS INTEGER)), lambda a, b: (a * 10 + b) % 97, 0));
"""


@dataclass
class CheckResult:
    check: Check
    failing: int
    examples: list[tuple[int, str | None]]   # (row number, value as text)


@dataclass
class Validation:
    submission: Submission
    rows: dict[str, int] = field(default_factory=dict)           # staged rows per file
    results: list[CheckResult] = field(default_factory=list)
    rejected_rows: dict[str, int] = field(default_factory=dict)  # distinct quarantined rows per file
    warnings: list[str] = field(default_factory=list)
    gx: list[dict] = field(default_factory=list)                 # GX expectation outcomes on the sample
    fault: SubmissionRejected | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None and not any(r.failing for r in self.results)

    @property
    def loadable(self) -> bool:
        return self.fault is None


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _txt(col: str) -> str:
    return f"CAST(t.{quote(col)} AS VARCHAR)"


def _read_expr(path: Path) -> str:
    p = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return f"(SELECT file_row_number + 1 AS __row, * EXCLUDE (file_row_number) FROM read_parquet('{p}', file_row_number=true))"
    return (f"(SELECT row_number() OVER () AS __row, * FROM read_csv('{p}', header=true, delim=',', quote='\"', "
            f"escape='\"', all_varchar=true, encoding='utf-8', strict_mode=true, null_padding=false))")


def _check_csv_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.readline()
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SubmissionRejected(path.name, "wrong encoding", f"line 1 is not UTF-8 ({e.reason} at byte {e.start})") from e
    if not text.strip():
        raise SubmissionRejected(path.name, "empty file", "no header row")
    if "," not in text:
        for d, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if d in text:
                raise SubmissionRejected(path.name, "wrong delimiter",
                                         f"the header is separated by {name}s; the contract requires commas")


def _first_bad_utf8(path: Path) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte sequence that is not UTF-8; streams the file."""
    line, offset, carry = 1, 0, b""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as e:
                if e.reason == "unexpected end of data" and len(data) - e.start < 4:
                    carry = data[e.start:]
                    data = data[:e.start]
                else:
                    return line + data[: e.start].count(b"\n"), offset + e.start
            line += data.count(b"\n")
            offset += len(data)
    return None


def stage(con: duckdb.DuckDBPyConnection, sub: Submission) -> Validation:
    """Copy each file into a temp table stg_<file> with a 1-based __row; raise on file-level faults."""
    con.execute(_MACROS)
    v = Validation(sub)
    for name, path in sub.files.items():
        if path.suffix == ".csv":
            _check_csv_header(path)
        def read(sql: str):
            try:
                return con.execute(sql)
            except duckdb.Error as e:
                bad = _first_bad_utf8(path) if path.suffix == ".csv" else None
                if bad:
                    raise SubmissionRejected(path.name, "wrong encoding",
                                             f"line {bad[0]} (byte {bad[1]}) is not UTF-8; the contract requires UTF-8") from e
                first = str(e).split("\n")[0].strip()
                raise SubmissionRejected(path.name, "unreadable file", first) from e

        cols = [r[0] for r in read(f"DESCRIBE SELECT * FROM {_read_expr(path)}").fetchall()]
        if name == "transactions":
            sub.fiu = "report_id" in cols
        spec = contract.columns(name, fiu=sub.fiu)
        missing = [c.name for c in spec if c.required and c.name not in cols]
        if missing:
            raise SubmissionRejected(path.name, "missing required column", ", ".join(missing))
        known = {c.name for c in spec} | {"__row"}
        extra = [c for c in cols if c not in known]
        if extra:
            v.warnings.append(f"{path.name}: columns not in the contract are ignored: {', '.join(extra)}")
        # One copy of the file: optional columns it lacks become NULL; empty CSV fields are nulls (contract).
        select = ["__row"]
        for c in spec:
            if c.name not in cols:
                select.append(f"CAST(NULL AS VARCHAR) AS {quote(c.name)}")
            elif path.suffix == ".csv":
                select.append(f"NULLIF({quote(c.name)}, '') AS {quote(c.name)}")
            else:
                select.append(quote(c.name))
        read(f"CREATE OR REPLACE TEMP TABLE stg_{name} AS SELECT {', '.join(select)} FROM {_read_expr(path)}")
        rows = con.execute(f"SELECT count(*) FROM stg_{name}").fetchone()[0]
        if rows == 0:
            raise SubmissionRejected(path.name, "empty file", "no data rows")
        want = manifest_rows(sub, path.name)
        if want is not None and want != rows:
            raise SubmissionRejected(path.name, "row count mismatch", f"manifest says {want} rows, file has {rows}")
        v.rows[name] = rows
    if "accounts" not in sub.files and not sub.fiu:
        raise SubmissionRejected("accounts.parquet|csv", "missing file", f"no accounts file in {sub.path}")
    _refuse_raw_identifiers(con, sub)
    return v


def _raw_identifier_sql(col: str) -> str:
    """True for a value that looks like a raw IBAN (valid checksum), e-mail address or phone number."""
    norm = f"upper(replace({col}, ' ', ''))"
    lengths = "[" + ", ".join(f"'{cc}{n}'" for cc, n in IBAN_LENGTHS.items()) + "]"
    countries = ", ".join(f"'{cc}'" for cc in IBAN_LENGTHS)   # cheap first filter before any regex
    return f"""CASE WHEN upper(substr({col}, 1, 2)) IN ({countries})
                         AND regexp_full_match({norm}, '{RE_IBAN_SHAPE}')
                         AND list_contains({lengths}, substr({norm}, 1, 2) || CAST(length({norm}) AS VARCHAR))
                    THEN iban_mod97({norm}) = 1          -- CASE: the costly checksum only for IBAN-shaped values
                    WHEN contains({col}, '@') THEN regexp_full_match({col}, '{RE_EMAIL}')
                    WHEN substr({col}, 1, 1) IN ('+', '0') THEN regexp_full_match({col}, '{RE_PHONE}')
                    ELSE false END"""


def _refuse_raw_identifiers(con: duckdb.DuckDBPyConnection, sub: Submission) -> None:
    """A raw IBAN, e-mail or phone in an identifier column rejects the submission (values never echoed).
    Each distinct value is tested once (an extract repeats its ids: 10 M rows hold about 200 k of them);
    rows are looked up only when a value matched."""
    for name in sub.files:
        for c in contract.columns(name, fiu=sub.fiu):
            if not c.identifier:
                continue
            col = f"CAST({quote(c.name)} AS VARCHAR)"
            # Materialised first: in one query DuckDB pushes the test below the DISTINCT, onto every row.
            con.execute(f"CREATE OR REPLACE TEMP TABLE id_values AS SELECT DISTINCT {col} AS v FROM stg_{name}")
            con.execute(f"DELETE FROM id_values WHERE NOT coalesce({_raw_identifier_sql('v')}, false)")
            found = con.execute("SELECT count(*) FROM id_values").fetchall()[0][0]
            if not found:
                con.execute("DROP TABLE id_values")
                continue
            n, rows = con.execute(f"""SELECT count(*), list(__row ORDER BY __row)[1:{EXAMPLES}] FROM stg_{name}
                                      WHERE {col} IN (SELECT v FROM id_values)""").fetchall()[0]
            raise SubmissionRejected(sub.files[name].name, "raw identifier",
                                     f"column {c.name}: {n} rows hold what looks like a raw IBAN, e-mail or phone "
                                     f"number (rows {', '.join(map(str, rows))}); only pseudonymous ids may be submitted "
                                     f"(run `thb-signals pseudonymise` first)")


_INTEGERS = ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER")
_NUMERIC = ("DECIMAL", "DOUBLE", "FLOAT", "REAL") + _INTEGERS


def _typed_ok(staged: str | None, sql_type: str) -> bool:
    """A Parquet column already of the contract's kind of type needs no textual format check."""
    if not staged or staged == "VARCHAR":
        return False
    if sql_type == "TIMESTAMPTZ":
        return staged.startswith("TIMESTAMP")
    if sql_type == "DATE":
        return staged == "DATE"
    if sql_type == "INTEGER":
        return staged in _INTEGERS
    return staged.startswith(_NUMERIC)


def fail_predicate(check: Check, sub: Submission, staged: str | None = None) -> str:
    """The SQL condition (over staging alias t) that is true for a row failing `check`.
    `staged` is the staging column's type: Parquet columns that are already typed skip text checks."""
    col = f"t.{quote(check.column)}"
    k, p = check.kind, check.params
    if k == "not_null":
        if staged and staged != "VARCHAR":
            return f"({col} IS NULL)"
        txt = _txt(check.column)   # blank = only spaces; trim() only for values that start with one (cheap at 10 M rows)
        return f"({col} IS NULL OR {txt} = '' OR (prefix({txt}, ' ') AND trim({txt}) = ''))"
    if k == "format":
        if _typed_ok(staged, p["sql_type"]):
            return f"({col} IS NOT NULL AND TRY_CAST({col} AS {p['sql_type']}) IS NULL)" if p["sql_type"] != "TIMESTAMPTZ" else "false"
        rx = p["regex"].replace("'", "''")
        typed = f"TRY_CAST({col} AS {p['sql_type']}) IS NULL" if p["sql_type"] != "VARCHAR" else "false"
        return f"({col} IS NOT NULL AND (NOT regexp_full_match(trim({_txt(check.column)}), '{rx}') OR {typed}))"
    if k == "in_set":
        values = ", ".join("'" + v.replace("'", "''") + "'" for v in p["values"])
        return f"({col} IS NOT NULL AND {_txt(check.column)} NOT IN ({values}))"
    if k == "range":
        num = f"TRY_CAST({col} AS DOUBLE)"
        parts = []
        if "min" in p:
            parts.append(f"{num} {'<=' if p.get('strict_min') else '<'} {p['min']}")
        if "max" in p:
            parts.append(f"{num} > {p['max']}")
        return "(" + " OR ".join(parts) + ")"
    if k == "required_if":
        other, value = p["when"]
        return f"(CAST(t.{quote(other)} AS VARCHAR) = '{value}' AND {col} IS NULL)"
    if k == "equals_manifest":
        return f"({col} IS DISTINCT FROM '{sub.bank_id}')" if sub.bank_id else "false"
    if k == "in_period":
        start, end = sub.period
        hi = end + timedelta(days=1)
        ts = f"TRY_CAST({col} AS TIMESTAMPTZ)"   # the period's dates are Dutch calendar days
        return (f"({ts} < timezone('{PERIOD_TZ}', TIMESTAMP '{start} 00:00:00') "
                f"OR {ts} >= timezone('{PERIOD_TZ}', TIMESTAMP '{hi} 00:00:00'))")
    raise ValueError(k)


def _failing_rows_sql(check: Check, sub: Submission, types: dict[str, str] | None = None) -> str:
    table = f"stg_{check.file}"
    value = _txt(check.column)
    if check.kind == "unique":
        key = ", ".join(quote(k) for k in check.params["key"])
        dup = f"(SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"   # cheap hash pass; the window sees duplicates only
        return (f"SELECT t.__row, {value} AS value FROM (SELECT s.*, row_number() OVER (PARTITION BY {key} ORDER BY __row) AS __n "
                f"FROM {table} s SEMI JOIN {dup} d USING ({key})) t WHERE t.__n > 1 AND t.{quote(check.column)} IS NOT NULL")
    if check.kind == "in_set" and len(check.params["values"]) > 20:   # long code lists: a hash anti-join, not 250 comparisons a row
        codes = "(SELECT unnest([" + ", ".join("'" + x.replace("'", "''") + "'" for x in check.params["values"]) + "]) AS code)"
        return (f"SELECT t.__row, {value} AS value FROM {table} t ANTI JOIN {codes} c ON {value} = c.code "
                f"WHERE t.{quote(check.column)} IS NOT NULL")
    if check.kind == "in_accounts":
        ok = "(SELECT a.bank_id, a.account_id FROM stg_accounts a WHERE a.__row NOT IN (SELECT row FROM failures WHERE file = 'accounts'))"
        return (f"SELECT t.__row, {value} AS value FROM {table} t ANTI JOIN {ok} a "
                f"ON CAST(a.account_id AS VARCHAR) = CAST(t.account_id AS VARCHAR) AND CAST(a.bank_id AS VARCHAR) = CAST(t.bank_id AS VARCHAR) "
                f"WHERE t.account_id IS NOT NULL")
    return f"SELECT t.__row, {value} AS value FROM {table} t WHERE {fail_predicate(check, sub, (types or {}).get(check.column))}"


def run_checks(con: duckdb.DuckDBPyConnection, v: Validation, progress: Callable[[str], None] | None = None) -> Validation:
    """Find every failing row; leave them in temp table `failures` (file, row, check_id, column, reason, value).
    `progress` hears of each file's checks as they finish (a large file takes seconds)."""
    sub = v.submission
    con.execute("CREATE OR REPLACE TEMP TABLE failures (file VARCHAR, row BIGINT, check_id VARCHAR, "
                "\"column\" VARCHAR, reason VARCHAR, value VARCHAR)")
    applicable = {name: [c for c in contract.checks(name, fiu=sub.fiu, has_manifest=sub.manifest is not None,
                                                    has_accounts="accounts" in sub.files)
                         if c.kind != "in_period" or sub.period]
                  for name in sub.files}
    # accounts first: transactions are checked against the accounts that pass.
    for name in sorted(sub.files, key=lambda n: n != "accounts"):
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE stg_{name}").fetchall()}
        for check in applicable[name]:
            con.execute(f"INSERT INTO failures SELECT '{name}', __row, ?, ?, ?, left(value, 200) FROM ({_failing_rows_sql(check, sub, types)})",
                        [check.id, check.column, check.reason])
        if progress:
            progress(f"{sub.path.name}/{name}: {len(applicable[name])} checks done on {v.rows.get(name, 0):,} rows")
    summary = con.execute(f"""
        SELECT check_id, count(*), list([CAST(row AS VARCHAR), value] ORDER BY row)[1:{EXAMPLES}]
        FROM failures GROUP BY check_id""").fetchall()
    by_id = {cid: (n, [(int(r), val) for r, val in ex]) for cid, n, ex in summary}
    v.results = [CheckResult(check, *by_id.get(check.id, (0, []))) for name in sub.files for check in applicable[name]]
    v.rejected_rows = dict(con.execute("SELECT file, count(DISTINCT row) FROM failures GROUP BY file").fetchall())
    return v


def validate(path: str | Path, con: duckdb.DuckDBPyConnection | None = None, gx_sample_rows: int = 0) -> Validation:
    """Open, stage and check a submission. File-level faults come back in `.fault`, never raised."""
    own = con is None
    con = con or duckdb.connect()
    try:
        try:
            sub = open_submission(path)
            v = stage(con, sub)
        except SubmissionRejected as e:
            return Validation(Submission(Path(path), {}), fault=e)
        run_checks(con, v)
        if gx_sample_rows:
            from schemas.gx_suite import validate_sample
            v.gx = validate_sample(con, v, gx_sample_rows)
        return v
    finally:
        if own:
            con.close()
