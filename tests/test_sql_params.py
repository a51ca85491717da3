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
SQL = re.compile(
    r"\b(SELECT|INSERT|DELETE|UPDATE|CREATE|WHERE|COPY|SET|ALTER|DROP|JOIN|VALUES|LIMIT|OFFSET|INTERVAL|ORDER BY|GROUP BY)\b"
)
NUMERIC = {"int", "float", "len", "bool"}  # their result is a number, whatever went in

# (ORDER BY and GROUP BY count too: a sort key or grouping can be spliced like any other clause)
# name -> the modules that may interpolate it (allowed in one module is not allowed in another)
ALLOWED: dict[str, tuple[str, ...]] = {
    # code-owned column exclusions of the tables copied to the page's snapshot
    "NOT_COPIED": ("pipelines/snapshot.py",),
    # the keyed-hash SQL expression of pipelines/pseudonymise.py over a column name (its key pads are bound)
    "sql_pseudonym": ("pipelines/rekey.py",),
    # contract-owned: file and column names, check definitions and the SQL built from them (schemas/checks.py)
    "name": (
        "casework/fiu/themes.py",  # the theme sandbox copies two settings the code names (TimeZone, memory_limit)
        "detectors/rule_detector.py",
        "detectors/sharding.py",
        "pipelines/ingest.py",
        "pipelines/validation.py",
        "schemas/gx_suite.py",
    ),
    "earlier": ("detectors/rule_detector.py",),  # detectors/rule_detector.py: a temp table the sharded run names (shard_hits)
    "col": ("pipelines/validation.py",),
    "cols": ("detectors/features.py", "detectors/scoring.py"),
    "column": ("detectors/features.py",),
    "names": ("detectors/scoring.py", "pipelines/ingest.py", "pipelines/rekey.py"),
    "casts": ("pipelines/ingest.py",),
    "select": ("pipelines/pseudonymise.py", "pipelines/validation.py", "schemas/gx_suite.py"),
    "target": ("pipelines/ingest.py",),
    "table": (
        "detectors/features.py",
        "detectors/sharding.py",
        "detectors/window.py",  # insert_clustered: win_tx or window_cache_tx, named by the code that calls it
        "pipelines/rekey.py",
        "pipelines/snapshot.py",
        "schemas/checks.py",
        "schemas/store.py",
    ),
    "key_cols": ("schemas/checks.py",),
    "keyed": ("schemas/checks.py",),  # schemas/checks.py Unique: IS NOT NULL over the contract's key columns
    "staged": ("pipelines/validation.py",),  # pipelines/validation.py stage: the contract's column names of a staged Parquet file
    "on": ("pipelines/ingest.py",),
    "check": ("schemas/checks.py",),
    "txt": ("schemas/checks.py",),
    "quote": ("schemas/checks.py",),
    "pred": ("schemas/checks.py",),
    "value": ("pipelines/rekey.py", "schemas/checks.py"),
    "codes": ("schemas/checks.py",),
    "dup": ("schemas/checks.py",),
    "ok": ("pipelines/ingest.py", "schemas/checks.py"),
    "rows_sql": ("detectors/window.py", "pipelines/validation.py"),
    "need": ("pipelines/cli.py",),
    "t": ("detectors/features.py", "detectors/nightly.py", "pipelines/demo.py", "pipelines/status.py"),
    "body": ("detectors/network.py", "schemas/store.py"),
    "typ": ("detectors/rule_detector.py",),
    "CASE_COLUMNS": ("detectors/scoring.py",),
    # code-owned SQL fragments and constants
    "reader": ("pipelines/pseudonymise.py", "pipelines/validation.py"),
    "fmt": ("pipelines/pseudonymise.py",),
    "MAX_LINE_BYTES": ("pipelines/validation.py",),
    "RE_SEPARATORS": ("pipelines/validation.py",),
    "RE_EDGE_SPACE": ("pipelines/validation.py",),
    "_raw_identifier_sql": ("pipelines/validation.py",),
    "MONEY_CHANNELS": ("detectors/network.py", "detectors/patterns.py"),
    "counts": ("detectors/features.py", "detectors/nightly.py"),
    "counted": ("detectors/features.py",),
    "scaled": ("detectors/features.py",),
    "LATEST": ("casework/review/case_queries.py", "casework/review/queries.py"),
    "CASE_REF": ("casework/review/case_queries.py",),
    "LATEST_ALERTS": ("casework/goaml.py", "casework/review/queries.py"),
    # the review snapshot and the casework database's one-time move: a constant, and a fragment chosen by the code
    "KEEP_DAYS": ("pipelines/snapshot.py",),
    "rules": ("pipelines/casework_db.py",),
    # built from code with ? placeholders only (their values are bound): window, categories, filters, paging
    "end_sql": ("detectors/window.py",),
    "in_window": ("casework/review/case_queries.py", "detectors/window.py"),
    "cat": ("casework/review/case_queries.py", "detectors/nightly.py", "detectors/window.py"),
    "where": (
        "casework/goaml.py",
        "casework/review/case_queries.py",
        "casework/review/queries.py",
        "detectors/window.py",
    ),
    "scope": ("casework/review/case_queries.py", "casework/review/queries.py"),
    "base": ("casework/review/queries.py",),
    "lim": ("casework/review/queries.py",),
    # rules: SQL is code; config parameters are checked to be numbers or rule ids (detectors.rules.rule_set)
    "r": ("detectors/rule_detector.py",),
    "rendered": ("detectors/rule_detector.py",),
    "render_shared": ("detectors/rule_detector.py",),
    # FIU screening: table names, weights and fragments chosen by the code (theme parameters are bound as $name)
    "source": ("casework/fiu/screen.py", "detectors/features.py"),
    "escalated": ("casework/fiu/screen.py",),
    "w": ("casework/fiu/screen.py",),
    "kinds": ("casework/fiu/themes.py", "detectors/window.py"),
    "has_accounts": ("casework/fiu/themes.py",),
    "theme": ("casework/fiu/themes.py",),  # a theme is a query by design: one SELECT (checked), its parameters bound
    "by": ("casework/fiu/themes.py",),
    "_one_statement": ("casework/fiu/themes.py",),  # the theme's own SELECT (as `theme`), trailing semicolons dropped
    # laundering patterns: SQL is code; settings and PT_ parameters are numbers (schemas/settings.py checks them)
    "SQL": ("detectors/patterns.py",),
    "s": ("detectors/patterns.py",),
    "p": ("detectors/patterns.py",),
    "paid": ("detectors/patterns.py",),  # the table pt_tx starts from: net_pay or the window's payments, chosen by the code
    # status: a column name chosen by the code ("error" or NULL on an old store)
    "error": ("pipelines/status.py",),
    # privacy: retention rules and re-keying statements are code (cut-offs and key pads bound as $name); log columns
    "KEPT_EVIDENCE": ("pipelines/purge.py",),
    "rule": ("pipelines/purge.py",),
    "record": ("pipelines/rekey.py", "pipelines/ingest.py"),  # ingest: the staged columns, the contract's own names
    # intake: the masking of a failing value or a quarantined record, SQL made by the code from its own patterns
    "masked_sql": ("pipelines/validation.py",),
    "sets": ("pipelines/rekey.py",),
    # features from parts and the nightly run's kept parts (detectors/features.py, detectors/nightly.py): code-owned
    # fragments, table names and the feature definitions; the kept window's bounds are bound as variables
    "CENTS": ("detectors/features.py",),
    "ROW_COLUMNS": ("detectors/nightly.py", "detectors/window.py"),
    # detectors/window.py: the integer win_tx is sorted by (its step), and the join and order that sort by it
    "CLUSTER_STEP": ("detectors/window.py",),
    "order": ("detectors/window.py",),
    "CLUSTER_KEY": ("detectors/window.py",),
    "one_bank": ("detectors/window.py",),  # rows_sql's query for one bank, the bank bound as a parameter
    "DAILY_SQL": ("detectors/features.py",),  # the daily totals' SELECT list: code
    "page": ("casework/review/queries.py",),  # LIMIT and OFFSET written in through int()
    "CLUSTER_BY": ("detectors/nightly_window.py",),  # detectors/window.py: the columns and hash win_tx is stored in order of
    "CACHE_KEY": ("detectors/nightly.py",),
    "last": ("detectors/features.py",),
    "parts_sql": ("detectors/features.py",),
    "days_sql": ("detectors/nightly.py",),
    "plain": ("detectors/features.py",),
    "parts_table": ("detectors/features.py",),
    "values": ("detectors/features.py",),
    "days": ("detectors/features.py", "detectors/rule_detector.py"),
    "new_values": ("detectors/nightly.py",),
    "start": ("detectors/nightly.py", "detectors/nightly_window.py"),
    "counts_sql": ("detectors/features.py",),
    "window_start": ("detectors/features.py",),
    "window_days": ("detectors/features.py",),  # through window_start, which writes it with int()
    "pass_through_sql": ("detectors/features.py", "detectors/nightly.py"),
    "pt": ("detectors/features.py", "detectors/nightly.py"),
    "sums": ("detectors/nightly.py",),
    "union": ("detectors/nightly.py",),
    "having": ("detectors/nightly.py",),
    "columns": ("detectors/nightly.py",),
    "query": ("detectors/nightly.py",),
    "q": ("detectors/nightly.py",),
    "old_start": ("detectors/nightly.py",),
    "SAME_DAY": ("detectors/nightly.py",),
    "SAME_VALUE": ("detectors/nightly.py",),
    "_list": ("detectors/nightly.py",),
    "LATE": ("detectors/nightly.py",),  # a bank's late day: a query of code (its bounds are bound)
    "also_late": ("detectors/nightly.py",),  # and the clauses that add it, chosen by the code
    "not_late": ("detectors/nightly.py",),
    "new": ("detectors/nightly_window.py",),
    "STATE": ("detectors/nightly_window.py",),  # the kept window's state columns (detectors/nightly_window.py)
    "zeros": ("detectors/nightly.py",),
    "wide": ("detectors/nightly.py",),
    "merged": ("detectors/nightly.py",),
    "gained": ("detectors/nightly.py",),
    "lost": ("detectors/nightly.py",),
    "expiring": ("detectors/nightly.py",),
    "near_days": ("detectors/nightly.py",),
    "touched": ("detectors/nightly.py",),
    "_sum_by_account": ("detectors/nightly.py",),
    "_negated": ("detectors/nightly.py",),
    "after": ("detectors/nightly.py",),
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
                if f.relative_to(ROOT).as_posix() not in ALLOWED.get(n, ()):
                    bad.setdefault(n, []).extend(places)
    assert not bad, f"f-strings build SQL from names not on the allow-list (bind them as parameters): {bad}"


def test_every_allowed_name_is_used_where_it_is_allowed():
    """The allow-list does not outlive the code: a name no module interpolates any more is taken off."""
    used = {
        (n, f.relative_to(ROOT).as_posix())
        for pkg in PACKAGES
        for f in sorted((ROOT / pkg).rglob("*.py"))
        for n in sql_fstring_names(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))
    }
    stale = sorted((n, f) for n, files in ALLOWED.items() for f in files if (n, f) not in used)
    assert not stale, f"allowed but not interpolated there (take them off the list): {stale}"


def test_the_scan_finds_a_spliced_value():
    src = """
def f(con, sub, days, path):
    con.execute(f"SELECT * FROM stg_{name} WHERE bank_id IS DISTINCT FROM '{sub.bank_id}'")
    con.execute(f"SELECT * FROM read_csv('{path}') WHERE x > now() - INTERVAL {int(days)} DAY")
    con.execute(f"SELECT * FROM t WHERE {' AND '.join(c for c in conds)}")
"""
    names = sql_fstring_names(src)
    assert {"sub", "path", "conds"} <= set(names) and "days" not in names and "c" not in names
