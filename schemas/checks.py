"""The check types of the contract, each once: its DuckDB SQL and its Great Expectations expectation side by side.

`schemas.contract` lists the checks (id, file, column, kind, params); this registry says what each kind
means. `pipelines.validation` asks a kind for the SQL that finds the failing rows of a staged file (every
row), `schemas.gx_suite` asks the same kind for the expectation it runs on a sample. Adding a kind means
adding one class here, with both halves, so the two cannot drift apart.

SQL comes back as (text, parameters): values from a submission (the manifest's bank_id and period) are
bound as parameters, never spliced; only contract-owned names and constants are written into the text.
"""

from __future__ import annotations

from datetime import timedelta

from schemas.contract import PERIOD_TZ, Check


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A contract-owned constant as an SQL string literal (never a submitted value: those are bound)."""
    return "'" + str(value).replace("'", "''") + "'"


def txt(col: str) -> str:
    return f"CAST(t.{quote(col)} AS VARCHAR)"


_INTEGERS = ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER")
_NUMERIC = ("DECIMAL", "DOUBLE", "FLOAT", "REAL") + _INTEGERS


def typed_ok(staged: str | None, sql_type: str) -> bool:
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


class CheckType:
    """One kind of check. `predicate` is the SQL condition (over staging alias t) true for a failing row;
    kinds that need a join override `failing_rows`. `expectation` is the GX equivalent; `sample_columns`
    are the derived columns the GX sample frame needs for it."""

    def predicate(self, check: Check, sub, staged: str | None) -> tuple[str, list]:
        raise NotImplementedError

    def failing_rows(self, check: Check, sub, staged: str | None = None) -> tuple[str, list]:
        """SELECT __row, value for every failing row of stg_<file>."""
        pred, params = self.predicate(check, sub, staged)
        return f"SELECT t.__row, {txt(check.column)} AS value FROM stg_{check.file} t WHERE {pred}", params

    def expectation(self, check: Check, E, context: dict) -> object:
        raise NotImplementedError

    def sample_columns(self, check: Check) -> list[str]:
        return []


class NotNull(CheckType):
    def predicate(self, check, sub, staged):
        col = f"t.{quote(check.column)}"
        if staged and staged != "VARCHAR":
            return f"({col} IS NULL)", []
        t = txt(check.column)  # blank = only spaces; trim() only for values that start with one (cheap at 10 M rows)
        return f"({col} IS NULL OR {t} = '' OR (prefix({t}, ' ') AND trim({t}) = ''))", []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToNotBeNull(column=check.column, meta={"check_id": check.id})


class Format(CheckType):
    def predicate(self, check, sub, staged):
        col, p = f"t.{quote(check.column)}", check.params
        if typed_ok(staged, p["sql_type"]):
            return (
                f"({col} IS NOT NULL AND TRY_CAST({col} AS {p['sql_type']}) IS NULL)"
                if p["sql_type"] != "TIMESTAMPTZ"
                else "false"
            ), []
        typed = f"TRY_CAST({col} AS {p['sql_type']}) IS NULL" if p["sql_type"] != "VARCHAR" else "false"
        return f"({col} IS NOT NULL AND (NOT regexp_full_match(trim({txt(check.column)}), {literal(p['regex'])}) OR {typed}))", []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToMatchRegex(column=check.column, regex=check.params["regex"], meta={"check_id": check.id})


class InSet(CheckType):
    def predicate(self, check, sub, staged):
        values = ", ".join(literal(v) for v in check.params["values"])
        return f"(t.{quote(check.column)} IS NOT NULL AND {txt(check.column)} NOT IN ({values}))", []

    def failing_rows(self, check, sub, staged=None):
        if len(check.params["values"]) <= 20:
            return super().failing_rows(check, sub, staged)
        # long code lists: a hash anti-join, not 250 comparisons a row
        codes = "(SELECT unnest([" + ", ".join(literal(x) for x in check.params["values"]) + "]) AS code)"
        value = txt(check.column)
        return (
            f"SELECT t.__row, {value} AS value FROM stg_{check.file} t ANTI JOIN {codes} c ON {value} = c.code "
            f"WHERE t.{quote(check.column)} IS NOT NULL"
        ), []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToBeInSet(
            column=check.column, value_set=list(check.params["values"]), meta={"check_id": check.id}
        )


class Range(CheckType):
    def predicate(self, check, sub, staged):
        p, num = check.params, f"TRY_CAST(t.{quote(check.column)} AS DOUBLE)"
        parts = []
        if "min" in p:
            parts.append(f"{num} {'<=' if p.get('strict_min') else '<'} {float(p['min'])!r}")
        if "max" in p:
            parts.append(f"{num} > {float(p['max'])!r}")
        return "(" + " OR ".join(parts) + ")", []

    def expectation(self, check, E, context):
        p = check.params
        return E.ExpectColumnValuesToBeBetween(
            column=f"{check.column}__value",
            min_value=p.get("min"),
            max_value=p.get("max"),
            strict_min=bool(p.get("strict_min")),
            meta={"check_id": check.id},
        )

    def sample_columns(self, check):
        return [f"TRY_CAST({quote(check.column)} AS DOUBLE) AS {quote(check.column + '__value')}"]


class Precision(CheckType):
    """A positive amount smaller than the contract's smallest unit: stored as DECIMAL(18,2) it would become 0.00."""

    def predicate(self, check, sub, staged):
        num = f"TRY_CAST(t.{quote(check.column)} AS DOUBLE)"
        return f"({num} > 0 AND {num} < {float(check.params['step'])!r})", []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToBeBetween(
            column=f"{check.column}__value",
            min_value=check.params["step"],
            row_condition=f"{check.column}__value>0",
            condition_parser="pandas",
            meta={"check_id": check.id},
        )

    def sample_columns(self, check):
        return [f"TRY_CAST({quote(check.column)} AS DOUBLE) AS {quote(check.column + '__value')}"]


class RequiredIf(CheckType):
    def predicate(self, check, sub, staged):
        other, value = check.params["when"]
        return f"(CAST(t.{quote(other)} AS VARCHAR) = {literal(value)} AND t.{quote(check.column)} IS NULL)", []

    def expectation(self, check, E, context):
        other, value = check.params["when"]
        return E.ExpectColumnValuesToNotBeNull(
            column=check.column, row_condition=f'{other}=="{value}"', condition_parser="pandas", meta={"check_id": check.id}
        )


class NotBeforeYear(CheckType):
    """A date column whose year lies before a year column of the same row (an account opened before its holder was born)."""

    def predicate(self, check, sub, staged):
        year = f"TRY_CAST(t.{quote(check.params['year'])} AS INTEGER)"
        return f"(year(TRY_CAST(t.{quote(check.column)} AS DATE)) < {year})", []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToBeBetween(column=f"{check.column}__after_year", min_value=0, meta={"check_id": check.id})

    def sample_columns(self, check):
        return [
            f"year(TRY_CAST({quote(check.column)} AS DATE)) - TRY_CAST({quote(check.params['year'])} AS INTEGER) "
            f"AS {quote(check.column + '__after_year')}"
        ]


class Unique(CheckType):
    def failing_rows(self, check, sub, staged=None):
        table, key_cols = f"stg_{check.file}", ", ".join(quote(k) for k in check.params["key"])
        # A pass over the keys' 64-bit hash (an integer hash table, not one of 10 M strings) finds the few candidate rows;
        # the window over the exact key then numbers true duplicates only (a hash collision stays alone, __n = 1).
        # Rows with a NULL in the key never count, as in an equi-join.
        dup = f"(SELECT hash({key_cols}) AS h FROM {table} GROUP BY h HAVING count(*) > 1)"
        keyed = " AND ".join(f"s.{quote(k)} IS NOT NULL" for k in check.params["key"])
        return (
            f"SELECT t.__row, {txt(check.column)} AS value FROM (SELECT s.*, row_number() OVER (PARTITION BY {key_cols} ORDER BY __row) "
            f"AS __n FROM {table} s WHERE hash({key_cols}) IN (SELECT h FROM {dup}) AND {keyed}) t "
            f"WHERE t.__n > 1 AND t.{quote(check.column)} IS NOT NULL"
        ), []

    def expectation(self, check, E, context):
        return E.ExpectCompoundColumnsToBeUnique(column_list=list(check.params["key"]), meta={"check_id": check.id})


class InAccounts(CheckType):
    def failing_rows(self, check, sub, staged=None):
        ok = "(SELECT a.bank_id, a.account_id FROM stg_accounts a WHERE a.__row NOT IN (SELECT row FROM failures WHERE file = 'accounts'))"
        return (
            f"SELECT t.__row, {txt(check.column)} AS value FROM stg_{check.file} t ANTI JOIN {ok} a "
            f"ON CAST(a.account_id AS VARCHAR) = CAST(t.account_id AS VARCHAR) AND CAST(a.bank_id AS VARCHAR) = CAST(t.bank_id AS VARCHAR) "
            f"WHERE t.account_id IS NOT NULL"
        ), []

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToBeInSet(column="__bank_account", value_set=context["accounts"], meta={"check_id": check.id})

    def sample_columns(self, check):
        return ["CAST(bank_id AS VARCHAR) || '|' || CAST(account_id AS VARCHAR) AS __bank_account"]


class InPeriod(CheckType):
    def predicate(self, check, sub, staged):
        start, end = sub.period
        ts = f"TRY_CAST(t.{quote(check.column)} AS TIMESTAMPTZ)"  # the period's dates are Dutch calendar days
        return (
            f"({ts} < timezone(?, CAST(? AS TIMESTAMP)) OR {ts} >= timezone(?, CAST(? AS TIMESTAMP)))",
            [PERIOD_TZ, f"{start} 00:00:00", PERIOD_TZ, f"{end + timedelta(days=1)} 00:00:00"],
        )

    def expectation(self, check, E, context):
        start, end = context["period"]
        return E.ExpectColumnValuesToBeBetween(
            column=f"{check.column}__value", min_value=start, max_value=end, meta={"check_id": check.id}
        )

    def sample_columns(self, check):
        return [f"TRY_CAST({quote(check.column)} AS TIMESTAMPTZ) AS {quote(check.column + '__value')}"]


class EqualsManifest(CheckType):
    def predicate(self, check, sub, staged):
        if not sub.bank_id:
            return "false", []
        return f"(t.{quote(check.column)} IS DISTINCT FROM ?)", [str(sub.bank_id)]

    def expectation(self, check, E, context):
        return E.ExpectColumnValuesToBeInSet(column=check.column, value_set=[context["bank_id"]], meta={"check_id": check.id})


CHECK_TYPES: dict[str, CheckType] = {
    "not_null": NotNull(),
    "format": Format(),
    "in_set": InSet(),
    "range": Range(),
    "precision": Precision(),
    "required_if": RequiredIf(),
    "not_before_year": NotBeforeYear(),
    "unique": Unique(),
    "in_accounts": InAccounts(),
    "in_period": InPeriod(),
    "equals_manifest": EqualsManifest(),
}


def check_type(check: Check) -> CheckType:
    try:
        return CHECK_TYPES[check.kind]
    except KeyError:
        raise ValueError(f"check {check.id}: no check type {check.kind!r} in schemas.checks") from None
