"""No SQL is built from outside values: an AST scan of every f-string that reads like SQL in pipelines/,
detectors/, casework/ and schemas/. Each name it interpolates must be on the allow-list below: names that hold
contract columns, code-owned SQL fragments or constants. Values from a submission, a config file or a web
request (bank ids, periods, paths, run ids, thresholds) are bound as parameters instead; a number may be
written in only through int()/float()."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipelines", "detectors", "casework", "schemas")
SQL = re.compile(r"\b(SELECT|INSERT|DELETE|UPDATE|CREATE|WHERE|COPY|SET|ALTER|DROP|JOIN|VALUES|LIMIT|OFFSET|INTERVAL)\b")
NUMERIC = {"int", "float", "len", "bool"}  # their result is a number, whatever went in

ALLOWED = {
    "NOT_COPIED",  # pipelines/snapshot.py: code-owned column exclusions of the tables copied to the page's snapshot
    # the keyed-hash SQL expression of pipelines/pseudonymise.py over a column name (its key pads are bound)
    "sql_pseudonym",
    # contract-owned: file and column names, check definitions and the SQL built from them (schemas/checks.py)
    "name",
    "earlier",  # detectors/rule_detector.py: a temp table the sharded run names (shard_hits)
    "col",
    "cols",
    "column",
    "names",
    "casts",
    "select",
    "target",
    "table",
    "key_cols",
    "keyed",  # schemas/checks.py Unique: IS NOT NULL over the contract's key columns
    "staged",  # pipelines/validation.py stage: the contract's column names of a staged Parquet file
    "on",
    "check",
    "txt",
    "quote",
    "pred",
    "value",
    "codes",
    "dup",
    "ok",
    "rows_sql",
    "need",
    "t",
    "extra",
    "body",
    "typ",
    "CASE_COLUMNS",
    # code-owned SQL fragments and constants
    "reader",
    "fmt",
    "MAX_LINE_BYTES",
    "RE_SEPARATORS",
    "RE_EDGE_SPACE",
    "_raw_identifier_sql",
    "EV",
    "WAGE_WORDS",
    "DAILY_SQL",
    "PASS_THROUGH_SQL",
    "CLUSTER_KEY",  # detectors/window.py: the integer win_tx is sorted by, and what it is made of
    "CLUSTER_STEP",
    "KINDS_JOIN",
    "kinds",
    "order",
    "MONEY_CHANNELS",
    "TIMEZONE",
    "NIGHT_FROM",
    "NIGHT_TO",
    "aggs",
    "counts",
    "counted",
    "flags",
    "scaled",
    "sql",
    "LATEST",
    "LATEST_ALERTS",
    # the review snapshot and the casework database's one-time move: a constant, and a fragment chosen by the code
    "KEEP_DAYS",
    "rules",
    # built from code with ? placeholders only (their values are bound): window, categories, filters, paging
    "end_sql",
    "in_window",
    "cat",
    "where",
    "scope",
    "base",
    "lim",
    # rules: SQL is code; config parameters are checked to be numbers or rule ids (detectors.rules.rule_set)
    "r",
    "rendered",
    "render_shared",
    # FIU screening: table names, weights and fragments chosen by the code (theme parameters are bound as $name)
    "source",
    "escalated",
    "w",
    "kinds",
    "has_accounts",
    "by",
    # laundering patterns: SQL is code; settings and PT_ parameters are numbers (schemas/settings.py checks them)
    "SQL",
    "s",
    "p",
    # status: a column name chosen by the code ("error" or NULL on an old store)
    "error",
    # privacy: retention rules and re-keying statements are code (cut-offs and key pads bound as $name); log columns
    "KEPT_EVIDENCE",
    "rule",
    "record",
    "sets",
    "COLUMNS",
    # features from parts and the nightly run's kept parts (detectors/features.py, detectors/nightly.py): code-owned
    # fragments, table names and the feature definitions; the kept window's bounds are bound as variables
    "CENTS",
    "ROW_COLUMNS",
    "CLUSTER_BY",  # detectors/window.py: the column names win_tx is stored in order of
    "CACHE_KEY",
    "last",
    "parts_sql",
    "days_sql",
    "values_sql",
    "plain",
    "parts_table",
    "values",
    "days",
    "new_values",
    "start",
    "c",
    "counts_sql",
    "window_start",
    "window_days",  # through window_start, which writes it with int()
    "pass_through_sql",
    "pt",
    "sums",
    "union",
    "having",
    "columns",
    "query",
    "q",
    "old_start",
    "SAME_DAY",
    "SAME_VALUE",
    "_list",
    "STATE",  # the kept window's state columns (detectors/nightly_window.py)
    "zeros",
    "wide",
    "merged",
    "gained",
    "lost",
    "expiring",
    "near_days",
    "touched",
    "_sum_by_account",
    "_negated",
    "after",
}


def interpolated_names(expr: ast.AST) -> set[str]:
    bound = set()
    for n in ast.walk(expr):
        if isinstance(n, ast.comprehension):
            bound |= {t.id for t in ast.walk(n.target) if isinstance(t, ast.Name)}
        if isinstance(n, ast.Lambda):
            bound |= {a.arg for a in n.args.args}
    out: set[str] = set()

    def visit(n):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in NUMERIC:
            return
        if isinstance(n, ast.Name) and n.id not in bound:
            out.add(n.id)
        for c in ast.iter_child_nodes(n):
            visit(c)

    visit(expr)
    return out


def sql_fstring_names(source: str, where: str = "<string>") -> dict[str, list[str]]:
    """name -> places, for every name interpolated into an f-string whose text reads like SQL."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if SQL.search(text):
                for v in node.values:
                    if isinstance(v, ast.FormattedValue):
                        for n in interpolated_names(v.value):
                            found.setdefault(n, []).append(f"{where}:{node.lineno}")
    return found


def test_no_sql_from_outside_values():
    bad: dict[str, list[str]] = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for n, places in sql_fstring_names(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT))).items():
                if n not in ALLOWED:
                    bad.setdefault(n, []).extend(places)
    assert not bad, f"f-strings build SQL from names not on the allow-list (bind them as parameters): {bad}"


def test_the_scan_finds_a_spliced_value():
    src = """
def f(con, sub, days, path):
    con.execute(f"SELECT * FROM stg_{name} WHERE bank_id IS DISTINCT FROM '{sub.bank_id}'")
    con.execute(f"SELECT * FROM read_csv('{path}') WHERE x > now() - INTERVAL {int(days)} DAY")
    con.execute(f"SELECT * FROM t WHERE {' AND '.join(c for c in conds)}")
"""
    names = sql_fstring_names(src)
    assert {"sub", "path", "conds"} <= set(names) and "days" not in names and "c" not in names
