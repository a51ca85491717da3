"""FIU workflow: each shipped theme fires on a planted case and not on its look-alike; a broken theme is reported while the
others run; screening ranks a planted network above background; decide and disseminate (twice: nothing new the second
time); the synthetic FIU extract is deterministic and its labelled networks come out on top."""

import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

from casework.dispositions import DispositionError, record_fiu_decision
from casework.fiu.disseminate import disseminate
from casework.fiu.screen import ScreenError, parse_period, screen
from casework.fiu.themes import ThemeError, create_period_view, load_theme, load_themes, run_theme
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from synthetic.evaluate import evaluate_subjects
from synthetic.fiu import COLUMNS, generate_fiu

START, END = date(2026, 9, 1), date(2026, 9, 30)


def _memory_store():
    from schemas.store import migrate

    con = store.connect(None)
    migrate(con)
    return con


class Reports:
    """Hand-written reports: one row per call, defaults for everything a theme does not look at."""

    def __init__(self):
        self.rows = []

    def add(
        self,
        entity,
        account,
        direction="debit",
        amount=1000.0,
        channel="transfer",
        cp=None,
        cp_type=None,
        country=None,
        name=None,
        mcc=None,
        city=None,
        desc=None,
        day=1,
    ):
        n = len(self.rows)
        self.rows.append(
            {
                "txn_id": f"{entity}-{n}",
                "bank_id": entity,
                "account_id": account,
                "booked_at": datetime(2026, 9, day, 12, tzinfo=timezone.utc),
                "direction": direction,
                "amount_eur": amount,
                "currency": None,
                "amount_orig": None,
                "channel": channel,
                "counterparty_id": cp,
                "counterparty_type": cp_type or ("person" if cp else None),
                "counterparty_name": name,
                "counterparty_country": country,
                "mcc": mcc,
                "merchant_id": None,
                "location_city": city,
                "description": desc,
                "device_id": None,
                "report_id": f"R{n:04d}",
                "reporting_entity": entity,
                "indicator_code": "SUBJ-GEN",
            }
        )
        return self

    def store(self, con, birth_years: dict | None = None):
        df = pl.DataFrame(
            self.rows, schema_overrides={c: pl.Utf8 for c in COLUMNS if c not in ("booked_at", "amount_eur", "amount_orig")}
        )
        con.register("rows_df", df.select(COLUMNS))
        con.execute("INSERT INTO fiu_reports SELECT *, 'test' FROM rows_df")
        con.unregister("rows_df")
        for acc, by in (birth_years or {}).items():
            con.execute(
                "INSERT INTO accounts (account_id, bank_id, customer_id, customer_type, opened_on, birth_year) "
                "VALUES (?, 'CRYPTO_X', ?, 'person', DATE '2020-01-01', ?)",
                [acc, acc, by],
            )
        return con


def subjects_hit(con, theme_id) -> set[str]:
    themes = {t.id: t for t in load_themes()[0]}
    create_period_view(con, START, END)
    return set(run_theme(con, themes[theme_id], START, END)["subject_id"].to_list())


# ---- one planted case and one look-alike per shipped theme ----------------------------------------------------------------


def case_mt_many_senders(r: Reports, planted: bool):
    for i in range(5 if planted else 3):  # a family gets money from two or three relatives
        r.add(
            ["MTO_RIA", "MTO_WU"][i % 2], f"snd{i}", amount=1800, channel="money_remittance", cp="recv", country="NG", day=2 + i
        )


def case_mt_other_country(r: Reports):
    for i in range(6):  # many senders, but to a country not on the list
        r.add("MTO_RIA", f"snd{i}", amount=1800, channel="money_remittance", cp="recv", country="DE", day=2 + i)


def case_collector(r: Reports, planted: bool):
    entities = ["BANK_A", "PI_PAYNL", "BANK_B"] if planted else ["BANK_A"] * 3  # a webshop's customers at one bank
    for i, e in enumerate(entities):
        r.add(e, f"vic{i}", amount=600, cp="recv", country="NL", day=3 + i)


def case_hotel_cash(r: Reports, planted: bool):
    r.add("BANK_A", "sub", amount=180, channel="card", name="Hotel Centraal", cp_type="business", mcc="7011")
    cities = ["Utrecht", "Breda", "Arnhem"] if planted else ["Utrecht", "Utrecht", "Utrecht"]
    for i, c in enumerate(cities):
        r.add("BANK_A", "sub", "credit", 2500, "cash_deposit", city=c, day=4 + i)


def case_structured(r: Reports, planted: bool):
    for i, amt in enumerate([1900, 1950, 1880] if planted else [1900, 1200, 2600]):
        r.add("MTO_WU", "sub", amount=amt, channel="money_remittance", cp=f"r{i}", country="RO", day=5 + i)


def case_creditboy(r: Reports, planted: bool):
    r.add("LENDER_FREO", "sub", "credit", 3000, "loan_disbursement", cp_type="business", day=2)
    r.add("TELCO_KPN", "sub", "debit", 900, "direct_debit", cp_type="business", day=10)
    if planted:
        r.add("LENDER_BNPL", "sub", "credit", 2000, "loan_disbursement", cp_type="business", day=20)


def case_crypto(r: Reports):
    for acc in ("young", "older"):
        for d in (3, 9):
            r.add("CRYPTO_X", acc, "credit", 2200, "wallet", desc="payout", day=d)


def case_wages(r: Reports, planted: bool):
    banks = ["BANK_A", "BANK_B", "BANK_A"] if planted else ["BANK_A"] * 3
    for i, b in enumerate(banks):
        r.add(b, f"w{i}", "credit", 600, "transfer", name="Uitzendbureau", cp_type="business", desc="loon week 36", day=4)
        r.add(b, f"w{i}", "debit", 450, "transfer", cp="pool", country="NL", day=5)


@pytest.mark.parametrize(
    "theme, build, subject",
    [
        ("mt_many_senders_source_country", case_mt_many_senders, "recv"),
        ("victims_collector_multi_entity", case_collector, "recv"),
        ("rent_hotel_cash_multi_city", case_hotel_cash, "sub"),
        ("structured_cash_mto", case_structured, "sub"),
        ("creditboys_loans_phones", case_creditboy, "sub"),
        ("wages_pooled_multi_bank", case_wages, "pool"),
    ],
)
def test_theme_fires_on_planted_case_not_on_look_alike(theme, build, subject):
    for planted in (True, False):
        r = Reports()
        build(r, planted)
        con = r.store(_memory_store())
        assert (subject in subjects_hit(con, theme)) is planted, f"{theme} planted={planted}"


def test_many_senders_theme_ignores_countries_not_listed():
    r = Reports()
    case_mt_other_country(r)
    assert subjects_hit(r.store(_memory_store()), "mt_many_senders_source_country") == set()


def test_crypto_theme_fires_on_young_subject_only():
    r = Reports()
    case_crypto(r)
    con = r.store(_memory_store(), {"young": 2006, "older": 1980})
    assert subjects_hit(con, "crypto_cashout_young") == {"young"}


def test_creditboy_theme_needs_both_lenders_and_telecom():
    r = Reports()
    for e in ("LENDER_FREO", "LENDER_BNPL", "LENDER_KREDIET"):
        r.add(e, "sub", "credit", 2000, "loan_disbursement", cp_type="business")
    assert subjects_hit(r.store(_memory_store()), "creditboys_loans_phones") == set()


# ---- analysts' own themes --------------------------------------------------------------------------------------------------

GOOD = """id: big_casino_cash
name: Large casino cash
typology: laundering
indicators: [ML-07]
parameters: {min_eur: 5000}
sql: SELECT account_id AS subject_id, report_id FROM fiu_period WHERE entity_kind = 'casino' AND amount_eur >= $min_eur
"""
BROKEN = """id: broken_theme
name: Typo in a column
typology: laundering
indicators: [ML-07]
sql: SELECT acount_id AS subject_id, report_id FROM fiu_period
"""


def _stored(tmp_path, r) -> Path:
    """A store holding the reports `r`."""
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    r.store(con)
    con.close()
    return db


def test_analyst_theme_runs_and_a_broken_one_is_reported_not_fatal(tmp_path, capsys):
    folder = tmp_path / "my_themes"
    folder.mkdir()
    (folder / "casino.yaml").write_text(GOOD)
    (folder / "broken.yaml").write_text(BROKEN)
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    r.add("CASINO_HC", "small", "credit", 900, "other")
    case_collector(r, True)
    db = _stored(tmp_path, r)
    rc = main(
        ["screen", "--db", str(db), "--period", "2026-09-01..2026-09-30", "--themes", str(folder), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 1
    lines = [x for x in err.splitlines() if "broken_theme" in x]
    assert len(lines) == 1 and "acount_id" in lines[0]
    subj = pl.read_parquet(tmp_path / "o" / "fiu_subjects.parquet")
    themes = dict(zip(subj["subject_id"], subj["themes"].to_list()))
    assert themes["gambler"] == ["big_casino_cash"] and themes["small"] == []
    assert themes["recv"] == ["victims_collector_multi_entity"]  # the shipped themes still ran


def test_theme_file_problems_are_one_line_each(tmp_path):
    (tmp_path / "a.yaml").write_text("id: x\nname: n\n")
    (tmp_path / "b.yaml").write_text(GOOD.replace("[ML-07]", "[FOO]"))
    (tmp_path / "c.yaml").write_text(GOOD.replace("{min_eur: 5000}", "{min_eur: {nested: 1}}"))
    # a theme reads; one that would change the store (found by a hostile-input sweep: it emptied fiu_reports) is refused
    sql = (
        "sql: SELECT account_id AS subject_id, report_id FROM fiu_period WHERE entity_kind = 'casino' AND amount_eur >= $min_eur"
    )
    assert sql in GOOD
    (tmp_path / "d.yaml").write_text(
        GOOD.replace(sql, "sql: DELETE FROM fiu_reports RETURNING account_id AS subject_id, report_id")
    )
    (tmp_path / "e.yaml").write_text(GOOD.replace(sql, sql + "; DROP TABLE fiu_reports"))
    (tmp_path / "f.yaml").write_text(GOOD.replace(sql, "sql: SELEKT 1"))
    cte = "sql: WITH d AS (DELETE FROM fiu_reports RETURNING account_id AS subject_id, report_id) SELECT * FROM d"
    (tmp_path / "e2.yaml").write_text(GOOD.replace(sql, cte))  # a SELECT to DuckDB's statement type
    themes, problems = load_themes([tmp_path])
    assert len(themes) == 7 and len(problems) == 7
    assert "sql must be one SELECT statement" in problems[5]  # e2.yaml, sorted after e.yaml
    problems = problems[:5] + problems[6:]
    assert "missing field(s)" in problems[0] and "FOO" in problems[1] and "min_eur" in problems[2]
    assert all("sql must be one SELECT statement" in p for p in problems[3:5]) and "sql does not parse" in problems[5]


def test_theme_metadata_is_checked_like_a_decisions(tmp_path):
    """Found by a hostile-input sweep: `paramters:` (a typo) was ignored and the theme ran without its parameters, a
    NaN parameter made `amount_eur <= $max_eur` hit every report, any text (markup, SQL) was stored as a typology,
    and of two files with one id in a folder the first was dropped without a word."""
    (tmp_path / "a.yaml").write_text(GOOD.replace("parameters:", "paramters:"))
    (tmp_path / "b.yaml").write_text(GOOD.replace("{min_eur: 5000}", "{min_eur: .nan}").replace("big_casino", "nan_casino"))
    (tmp_path / "c.yaml").write_text(GOOD.replace("typology: laundering", 'typology: "<img src=x> \'); DROP TABLE x;--"'))
    (tmp_path / "d.yaml").write_text(GOOD.replace("big_casino_cash", "twice"))
    (tmp_path / "e.yaml").write_text(GOOD.replace("big_casino_cash", "twice").replace("Large", "Larger"))
    themes, problems = load_themes([tmp_path])
    assert [t.id for t in themes if t.path.startswith(str(tmp_path))] == ["twice"]
    assert next(t for t in themes if t.id == "twice").name == "Large casino cash"  # the first of the two
    assert len(problems) == 4
    assert "unknown field(s) paramters" in problems[0]
    assert "parameter 'min_eur' must be a finite number" in problems[1]
    assert "typology must be one lower-case word" in problems[2] and "DROP" not in problems[2]
    assert "e.yaml: id twice is also the id of d.yaml; not loaded" in problems[3]


def test_a_runaway_theme_is_stopped_and_reported(tmp_path):
    """Found by a hostile-input sweep: a theme over `range(9000000000000000)` was still running after 120 s, holding
    the store's write lock; a theme now has a time limit and is reported like any theme that fails."""
    from casework.fiu.themes import THEME_SECONDS

    sql = "SELECT account_id AS subject_id, report_id FROM fiu_period, range(9000000000000000) t(r) WHERE r < 0"
    theme = load_theme(_theme_file(tmp_path, "slow.yaml", sql))
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    con = r.store(_memory_store())
    create_period_view(con, START, END)
    started = time.monotonic()
    with pytest.raises(ThemeError, match="ran longer than 0.5 s and was stopped"):
        run_theme(con, theme, START, END, seconds=0.5)
    assert time.monotonic() - started < 30 and THEME_SECONDS >= 300


def test_theme_parameters_are_bound_not_pasted(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(GOOD.replace("{min_eur: 5000}", '{min_eur: "0 OR true"}'))
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    con = r.store(_memory_store())
    create_period_view(con, START, END)
    with pytest.raises(ThemeError):  # compared as a value: '0 OR true' is no number, never SQL
        run_theme(con, load_theme(p), START, END)


# ---- hostile theme files (a sweep found each of these) ---------------------------------------------------------------------

CASINO_SQL = "SELECT account_id AS subject_id, report_id FROM fiu_period WHERE entity_kind = 'casino' AND amount_eur >= $min_eur"


def _theme_file(folder, name: str, sql: str | None = None, extra: str = "", theme_id: str | None = None):
    text = GOOD if sql is None else GOOD.replace(f"sql: {CASINO_SQL}", f"sql: {sql}")
    if theme_id:
        text = text.replace("id: big_casino_cash", f"id: {theme_id}")
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text + extra)
    return folder / name


def _screen_store(tmp_path):
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    case_collector(r, True)
    return _stored(tmp_path, r)


@pytest.mark.parametrize(
    "sql, named",
    [
        ("SELECT column0 AS subject_id, column0 AS report_id FROM read_csv('/etc/passwd', header=false)", "read_csv"),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
        ("SELECT * FROM '/etc/passwd.csv'", "/etc/passwd.csv"),
        ("SELECT * FROM 'https://example.org/x.parquet'", "https://example.org/x.parquet"),
        ("SELECT * FROM fiu_period WHERE report_id IN (SELECT content FROM read_text('/etc/passwd'))", "read_text"),
        ("SELECT * FROM glob('/etc/*')", "glob"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
        ("SELECT * FROM query('SELECT 1')", "query"),
        ("SELECT * FROM fiu_reports", "fiu_reports"),
        ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), x", "'x'"),  # a WITH name used outside its scope
        ("SUMMARIZE '/etc/passwd.csv'", "SUMMARIZE"),
        ("SELECT read_text('/etc/passwd') AS subject_id, report_id FROM fiu_period", "read_text"),
    ],
)
def test_theme_reaching_files_urls_or_other_tables_is_refused_at_load(tmp_path, sql, named):
    _theme_file(tmp_path, "t.yaml", sql.replace("'", "''").join("''"))
    themes, problems = load_themes([tmp_path])
    assert len(themes) == 7 and len(problems) == 1
    assert str(tmp_path / "t.yaml") in problems[0] and named in problems[0] and "\n" not in problems[0]


def test_theme_sql_reaches_no_file_even_past_the_load_check(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("subject_id,report_id\nleak,leak\n")
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    con = r.store(_memory_store())
    create_period_view(con, START, END)
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"SELECT * FROM '{secret}'", "SELECT * FROM fiu_reports"):
        theme = load_theme(_theme_file(tmp_path, "ok.yaml"))
        theme.sql = sql  # as if the load check had missed it: it runs where no file or store table is reachable
        with pytest.raises(ThemeError):
            run_theme(con, theme, START, END)
    assert con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0] is True  # the store's is untouched


def test_screen_reports_a_file_reading_theme_and_stores_nothing_of_the_file(tmp_path, capsys):
    folder = tmp_path / "my_themes"
    _theme_file(folder, "casino.yaml")
    sql = "SELECT column0 AS subject_id, column0 AS report_id FROM read_csv('/etc/passwd', header=false, sep='\t')"
    _theme_file(folder, "passwd.yaml", '"' + sql + '"', theme_id="passwd_read")
    db = _screen_store(tmp_path)
    rc = main(["screen", "--db", str(db), "--period", "2026-09-01..2026-09-30", "--themes", str(folder)])
    err = capsys.readouterr().err
    assert rc == 1 and [x for x in err.splitlines() if "passwd.yaml" in x and "read_csv" in x]
    con = store.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM fiu_theme_hits WHERE theme_id = 'passwd_read'").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM fiu_theme_hits WHERE theme_id = 'big_casino_cash'").fetchall()[0][0] == 1


@pytest.mark.parametrize("value", ['"false"', "'no'", "0", "null", "[false]"])
def test_enabled_must_be_a_yaml_boolean(tmp_path, value):
    _theme_file(tmp_path, "t.yaml", extra=f"enabled: {value}\n")
    themes, problems = load_themes([tmp_path])
    assert "big_casino_cash" not in {t.id for t in themes}
    assert len(problems) == 1 and str(tmp_path / "t.yaml") in problems[0] and "enabled" in problems[0]


def test_enabled_false_switches_a_theme_off(tmp_path):
    _theme_file(tmp_path, "t.yaml", extra="enabled: false\n")
    themes, problems = load_themes([tmp_path])
    assert problems == [] and {t.id: t.enabled for t in themes}["big_casino_cash"] is False


@pytest.mark.parametrize(
    "sql",
    [
        CASINO_SQL + ";",
        CASINO_SQL + " ;  ;",
        CASINO_SQL + " -- the big ones",
        CASINO_SQL + "; -- the big ones",
        CASINO_SQL + " -- at least $min_eur, no $max_eur",  # a $name in a comment is no parameter
        "|\n  " + CASINO_SQL + " -- the big ones\n  -- and a last line\n",
        "|\n  " + CASINO_SQL + ";\n",
    ],
)
def test_theme_sql_may_end_in_a_semicolon_or_a_line_comment(tmp_path, sql):
    r = Reports()
    r.add("CASINO_HC", "gambler", "credit", 9000, "other")
    r.add("CASINO_HC", "small", "credit", 900, "other")
    con = r.store(_memory_store())
    create_period_view(con, START, END)
    theme = load_theme(_theme_file(tmp_path, "t.yaml", sql))
    assert run_theme(con, theme, START, END)["subject_id"].to_list() == ["gambler"]


def test_theme_returning_a_list_is_reported_and_the_others_run(tmp_path, capsys):
    folder = tmp_path / "my_themes"
    _theme_file(folder, "casino.yaml")
    _theme_file(folder, "list.yaml", "SELECT [account_id] AS subject_id, report_id FROM fiu_period", theme_id="list_theme")
    db = _screen_store(tmp_path)
    rc = main(
        ["screen", "--db", str(db), "--period", "2026-09-01..2026-09-30", "--themes", str(folder), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 1
    lines = [x for x in err.splitlines() if "list_theme" in x]
    assert len(lines) == 1 and "list.yaml" in lines[0] and "subject_id must be text" in lines[0]
    subj = pl.read_parquet(tmp_path / "o" / "fiu_subjects.parquet")
    themes = dict(zip(subj["subject_id"], subj["themes"].to_list()))
    assert themes["gambler"] == ["big_casino_cash"] and themes["recv"] == ["victims_collector_multi_entity"]


def test_unreadable_theme_files_are_reported_and_the_others_load(tmp_path, capsys):
    folder = tmp_path / "my_themes"
    _theme_file(folder, "casino.yaml")
    (folder / "t.yaml").mkdir()  # a folder named like a theme file
    (folder / "deep.yaml").write_text("id: " + "[" * 5000 + "]" * 5000 + "\n")
    (folder / "date.yaml").write_text(GOOD.replace("id: big_casino_cash", "id: 2026-02-30"))  # a YAML date that is none
    themes, problems = load_themes([folder])
    assert "big_casino_cash" in {t.id for t in themes} and len(themes) == 8
    assert len(problems) == 3 and all(p.startswith("theme file ") and "\n" not in p for p in problems)
    by_file = {name: [p for p in problems if str(folder / name) in p] for name in ("t.yaml", "deep.yaml", "date.yaml")}
    assert all(len(v) == 1 for v in by_file.values())
    assert "nested too deeply" in by_file["deep.yaml"][0]
    assert main(["themes", "--themes", str(folder)]) == 1  # not a traceback, not exit 2
    out, err = capsys.readouterr()
    assert "big_casino_cash" in out and len([x for x in err.splitlines() if x.startswith("not loaded:")]) == 3
    db = _screen_store(tmp_path)
    assert main(["screen", "--db", str(db), "--period", "2026-09-01..2026-09-30", "--themes", str(folder)]) == 1
    assert "8 themes run" in capsys.readouterr().out


def test_period_must_be_two_dates():
    assert parse_period("2026-09-01..2026-09-30") == (START, END)
    for bad in ("2026-09", "2026-09-30..2026-09-01", "x..y"):
        with pytest.raises(ScreenError):
            parse_period(bad)


# ---- screening, decisions, dissemination -----------------------------------------------------------------------------------


def planted_and_background() -> Reports:
    r = Reports()
    case_mt_many_senders(r, True)  # NG collector and five senders
    for i in range(5):  # senders also pay each other's rent through a bank: one network
        r.add("BANK_C", f"snd{i}", amount=300, cp=f"snd{(i + 1) % 5}", country="NL", day=10)
    for i in range(40):  # background: one sender, one family receiver each
        r.add("MTO_MG", f"bg{i}", amount=2600 + i, channel="money_remittance", cp=f"fam{i}", country="RO", day=1 + i % 28)
    return r


def test_screen_ranks_planted_network_above_background(tmp_path):
    con = store.connect(tmp_path / "s.duckdb")
    planted_and_background().store(con)
    res = screen(None, START, END, con=con)
    s = res.subjects
    planted = {"recv", *(f"snd{i}" for i in range(5))}
    top = set(s.head(len(planted))["subject_id"].to_list())
    assert top == planted
    assert s.filter(pl.col("subject_id").is_in(list(planted)))["network_id"].n_unique() == 1
    assert s.filter(pl.col("subject_id") == "recv")["rank"][0] == 1
    # an escalated bank alert on a background subject lifts it above the other background subjects
    con.execute(
        "INSERT INTO alert_status (alert_id, bank_id, account_id, status, opened_run, last_run, last_score, updated_at) "
        "VALUES ('A1', 'BANK_X', 'bg7', 'escalated', 'r', 'r', 0.9, now())"
    )
    s2 = screen(None, START, END, con=con).subjects
    bg = s2.filter(pl.col("subject_id").str.starts_with("bg"))
    assert bg["subject_id"][0] == "bg7" and "escalated bank alert" in bg["reasons"][0]
    assert con.execute("SELECT count(DISTINCT screen_id) FROM fiu_subjects").fetchall()[0][0] == 2


def screened_store(tmp_path):
    """A store of planted_and_background() reports, screened over September."""
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    planted_and_background().store(con)
    screen(None, START, END, con=con)
    con.close()
    return db


def test_decide_and_disseminate_twice(tmp_path):
    db = screened_store(tmp_path)
    reports = ["R0000", "R0001", "R0002"]
    for rid in reports:
        assert (
            main(
                [
                    "fiu-decide",
                    "--db",
                    str(db),
                    "--report",
                    rid,
                    "--decision",
                    "suspicious",
                    "--typology",
                    "cross_border",
                    "--note",
                    "collector in NG",
                    "--user",
                    "fiona",
                ]
            )
            == 0
        )
    assert main(["fiu-decide", "--db", str(db), "--report", "R0009", "--decision", "not_suspicious", "--user", "fiona"]) == 0
    assert main(["fiu-decide", "--db", str(db), "--report", "NOPE", "--decision", "not_suspicious", "--user", "fiona"]) == 2
    con = store.connect(db)
    cw = open_casework(db)  # decisions and the audit log live in the casework database
    with pytest.raises(DispositionError, match="typology"):
        record_fiu_decision(cw, "R0003", "suspicious", "fiona", reports=con)
    assert cw.audit_rows().filter(pl.col("action").str.starts_with("fiu_")).height == 4
    con.close()
    ids = tmp_path / "identities.csv"
    ids.write_text("pseudonymous_id,first_name,last_name,phone,account\nrecv,Chidi,Okafor,0612345678,NL00SYNT0000000001\n")
    out = tmp_path / "out"
    first = disseminate(db, out, "fiona", ids)
    assert len(first) == 1 and first[0]["reports"] == 3 and first[0]["route_requests"] == ["NG"]
    folder = out / first[0]["package_id"]
    pkg = json.loads((folder / "package.json").read_text())
    assert sorted(r["report_id"] for r in pkg["reports"]) == reports
    assert pkg["themes"] == ["mt_many_senders_source_country"] and pkg["typologies"] == ["cross_border"]
    recv = [p for p in pkg["parties"] if p["party_id"] == "recv"][0]
    assert recv["first_name"] == "Chidi" and "phone" not in recv
    text = "".join(p.read_text() for p in folder.iterdir())
    assert "0612345678" not in text and "NL00SYNT" not in text
    assert "Okafor" in (folder / "summary.html").read_text() and "Questions" in (folder / "request_FIU_NG.md").read_text()
    assert disseminate(db, out, "fiona") == []  # nothing new
    con = store.connect(db)
    record_fiu_decision(open_casework(db), "R0003", "suspicious", "fiona", "cross_border", reports=con)
    con.close()
    again = disseminate(db, out, "fiona")  # only the newly declared report, not pseudonymised away
    assert len(again) == 1 and again[0]["reports"] == 1
    pkg2 = json.loads((out / again[0]["package_id"] / "package.json").read_text())
    assert [r["report_id"] for r in pkg2["reports"]] == ["R0003"] and pkg2["identified"] is False


def test_generate_fiu_is_deterministic_and_screening_finds_planted_networks(tmp_path):
    a = generate_fiu(tmp_path / "a", reports=1500, networks=15, seed=3)
    b = generate_fiu(tmp_path / "b", reports=1500, networks=15, seed=3)
    ta, tb = (pl.read_parquet(tmp_path / x / "FIU_NL" / "transactions.parquet") for x in "ab")
    assert ta.equals(tb) and a["reports"] == b["reports"]
    assert pl.read_parquet(tmp_path / "a" / "fiu_labels.parquet").equals(pl.read_parquet(tmp_path / "b" / "fiu_labels.parquet"))
    assert not ta.equals(
        pl.read_parquet(generate_fiu(tmp_path / "c", reports=1500, networks=15, seed=4)["folder"] + "/transactions.parquet")
    )
    assert ta["reporting_entity"].str.split("_").list.first().n_unique() == 8  # every kind of obliged entity
    from pipelines.ingest import ingest

    db = tmp_path / "s.duckdb"
    assert ingest(tmp_path / "a" / "FIU_NL", db).outcome == "loaded"
    end = date(2026, 9, 30)
    res = screen(db, end - timedelta(days=89), end)
    m = evaluate_subjects(res.subjects, tmp_path / "a" / "fiu_labels.parquet", first=30)
    assert m["trafficking_share@first30"] >= 0.6 and m["network_recall@5%"] >= 0.6


def test_monthly_deployment_and_previous_month():
    from pathlib import Path

    import yaml

    from casework.fiu.flows import previous_month

    dep = {
        d["name"]: d for d in yaml.safe_load((Path(__file__).resolve().parent.parent / "prefect.yaml").read_text())["deployments"]
    }
    fiu = dep["fiu-monthly-screen"]
    assert fiu["entrypoint"] == "casework/fiu/flows.py:fiu_screen_flow" and fiu["schedules"][0]["cron"].split()[2:] == [
        "2",
        "*",
        "*",
    ]
    assert previous_month(date(2026, 3, 2)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous_month(date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_screen_flow_runs_and_publishes(prefect_harness, tmp_path):
    from casework.fiu.flows import fiu_screen_flow

    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    planted_and_background().store(con)
    con.close()
    res = fiu_screen_flow(str(db), str(tmp_path / "o"), "2026-09-01..2026-09-30")
    assert res["top"][0]["subject_id"] == "recv" and res["theme_errors"] == []
    assert (tmp_path / "o" / "fiu_subjects.parquet").exists()
    # found by a hostile-input sweep: the flow recorded screenings the command line refuses, and finished Completed
    # with themes not run (so Prefect notified nobody)
    screens = lambda: store.peek(db).execute("SELECT count(*) FROM fiu_screens").fetchone()[0]  # noqa: E731
    before = screens()
    with pytest.raises(ScreenError, match="not a folder of theme files"):
        fiu_screen_flow(str(db), None, "2026-09-01..2026-09-30", [str(tmp_path / "nowhere")])
    with pytest.raises(ScreenError, match="no FIU reports in 2030-01-01..2030-01-31: the store holds reports from"):
        fiu_screen_flow(str(db), None, "2030-01-01..2030-01-31")
    assert screens() == before
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "broken.yaml").write_text(BROKEN)
    with pytest.raises(RuntimeError, match="1 theme\\(s\\) not run: theme broken_theme"):
        fiu_screen_flow(str(db), None, "2026-09-01..2026-09-30", [str(tmp_path / "t")])
    assert screens() == before + 1  # the themes that ran are recorded


# ---- goAML intake ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The project's own goAML export of escalated alerts, from a small scored synthetic store."""
    from casework.dispositions import record_disposition
    from casework.goaml import GoamlExporter
    from detectors.scoring import score_store
    from schemas.settings import load_settings
    from synthetic.identities import write_identities
    from tests.conftest import generated_store
    from tests.test_goaml import CONFIG

    root = tmp_path_factory.mktemp("goaml_in")
    db = generated_store(root, accounts=2000, days=45)
    res = score_store(db, root / "out", models_dir=root / "m")
    from pipelines.snapshot import ensure

    ensure(db)  # the scored alerts handed to the casework database, a snapshot published
    for a in res.alerts.sort("rank")["alert_id"].head(3).to_list():
        record_disposition(open_casework(db), a, "escalate", "bob")
    ids = write_identities(db, root / "identities.csv")
    written, refused = GoamlExporter(db, ids, load_settings(CONFIG).goaml.entity()).export(root / "xml", "bob", escalated=True)
    assert written and not refused
    key = root / "key"
    key.write_bytes(b"partners-shared-key-0123456789")
    return root, db, written, key


def test_goaml_reports_round_trip_into_fiu_reports(exported, tmp_path, capsys):
    root, db, written, key = exported
    fiu_db = tmp_path / "fiu.duckdb"
    assert main(["ingest", str(root / "xml"), "--db", str(fiu_db), "--key-file", str(key)]) == 0
    con = duckdb.connect(str(db), read_only=True)
    orig = con.sql("SELECT txn_id, direction, amount_eur, booked_at, channel FROM transactions").pl()
    con.close()
    fiu = duckdb.connect(str(fiu_db), read_only=True)
    got = fiu.sql(
        "SELECT txn_id, direction, amount_eur, booked_at, channel, account_id, reporting_entity, report_id, indicator_code "
        "FROM fiu_reports"
    ).pl()
    fiu.close()
    n_xml = sum(len(etree_transactions(p)) for p in written)
    assert got.height == n_xml > 0
    both = got.join(orig, on="txn_id", suffix="_bank")
    assert both.height == got.height
    assert (both["direction"] == both["direction_bank"]).all() and (
        both["amount_eur"] - both["amount_eur_bank"]
    ).abs().max() < 0.005
    assert (both["booked_at"].dt.epoch("s") == both["booked_at_bank"].dt.epoch("s")).all()
    same_mode = both.filter(pl.col("channel") != pl.col("channel_bank"))  # direct debit reads back as transfer: same goAML codes
    assert set(zip(same_mode["channel"], same_mode["channel_bank"])) <= {
        ("transfer", "direct_debit"),
        ("instant_transfer", "wallet"),
    }
    text = "".join(p.read_text() for p in written)
    assert all(len(a) == 32 and a not in text for a in got["account_id"].unique().to_list())  # keyed hashes, no account number
    assert got["indicator_code"].is_not_null().all() and got["reporting_entity"].str.starts_with("BANK_").all()


def test_goaml_report_failing_the_schema_is_quarantined(exported, tmp_path, capsys):
    import shutil

    root, _, written, key = exported
    folder = tmp_path / "in"
    folder.mkdir()
    for p in written:
        shutil.copy(p, folder / p.name)
    bad = folder / "broken.xml"
    bad.write_text(
        written[0].read_text().replace("<amount_local>", "<amount_locale>").replace("</amount_local>", "</amount_locale>")
    )
    fiu_db = tmp_path / "fiu.duckdb"
    assert main(["ingest", str(folder), "--db", str(fiu_db), "--key-file", str(key)]) == 1
    out = capsys.readouterr().out
    assert "quarantined broken.xml: line" in out and "amount_locale" in out
    con = duckdb.connect(str(fiu_db), read_only=True)
    assert (
        con.execute("SELECT count(*) FROM quarantine WHERE file = 'broken.xml' AND check_id = 'goaml.schema'").fetchall()[0][0]
        == 1
    )
    assert con.execute("SELECT count(DISTINCT report_id) FROM fiu_reports").fetchall()[0][0] == len(written)
    con.close()
    assert main(["ingest", str(folder), "--db", str(fiu_db)]) == 2  # no key: refused, one line
    assert "--key-file" in capsys.readouterr().err


def etree_transactions(path):
    from lxml import etree

    return etree.parse(str(path)).getroot().findall("transaction")


# ---- the FIU queue on the review site ------------------------------------------------------------------------------------


def test_fiu_queue_on_the_review_site(tmp_path):
    import re

    from starlette.testclient import TestClient

    from casework.review.app import Review
    from casework.review.auth import load_users
    from tests.test_review import login, users_file

    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    planted_and_background().store(con)
    screen(None, START, END, con=con)
    con.close()
    app = Review(db, load_users(users_file(tmp_path / "users.yaml")), secret=b"k" * 32).app()
    ann = TestClient(app)
    login(ann, "ann")
    assert ann.get("/fiu").status_code == 404 and ann.get("/fiu/subjects/recv").status_code == 404
    c = TestClient(app)
    login(c, "fiona")
    page = c.get("/fiu")
    assert page.status_code == 200 and page.text.index("/fiu/subjects/recv") < page.text.index("/fiu/subjects/bg0")
    subj = c.get("/fiu/subjects/recv")
    assert subj.status_code == 200 and "R0000" in subj.text and "undecided" in subj.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', subj.text).group(1)
    r = c.post(
        "/fiu/reports/R0000/decision",
        data={"csrf": csrf, "subject": "recv", "decision": "suspicious", "typology": "cross_border"},
        follow_redirects=True,
    )
    assert "Recorded: suspicious" in r.text and "suspicious (fiona)" in r.text
    forged = c.post(
        "/fiu/reports/R0001/decision", data={"csrf": "x", "subject": "recv", "decision": "suspicious", "typology": "t"}
    )
    assert forged.status_code == 403
    assert ann.post("/fiu/reports/R0001/decision", data={"csrf": "x", "decision": "suspicious"}).status_code in (403, 404)
    assert open_casework(db).fiu_decisions().select("report_id", "decision", "user_name").rows() == [
        ("R0000", "suspicious", "fiona")
    ]


def test_goaml_intake_expands_no_entity_and_masks_the_schemas_message(exported, tmp_path, capsys):
    """Found by a hostile-input sweep: an internal entity in a report was expanded into a stored value, a raw
    e-mail address typed into a date field was printed and stored in the schema's message, and a symbolic link was
    followed (it could make the intake read any file)."""
    import re

    root, _, written, key = exported
    folder = tmp_path / "in"
    folder.mkdir()
    text = written[0].read_text()
    with_entity = re.sub(r"(<\?xml[^>]*\?>)", r'\1\n<!DOCTYPE report [<!ENTITY e "ENTITYEXPANDED">]>', text, count=1)
    (folder / "entity.xml").write_text(with_entity.replace("<transaction_description>", "<transaction_description>&e;", 1))
    (folder / "leak.xml").write_text(re.sub(r"<date_transaction>[^<]*<", "<date_transaction>jan@example.com<", text, count=1))
    outside = tmp_path / "elsewhere.xml"  # a valid report, but outside the folder: a link to it is not read
    outside.write_text(text.replace("<transaction_description>", "<transaction_description>LINKEDIN", 1))
    (folder / "linked.xml").symlink_to(outside)
    fiu_db = tmp_path / "fiu.duckdb"
    assert main(["ingest", str(folder), "--db", str(fiu_db), "--key-file", str(key)]) == 1
    out = capsys.readouterr().out
    assert "quarantined entity.xml: a DOCTYPE" in out and "quarantined leak.xml: line" in out
    assert "quarantined linked.xml: a symbolic link" in out
    assert "jan@example.com" not in out
    con = duckdb.connect(str(fiu_db), read_only=True)
    stored = " ".join(str(v) for row in con.execute("SELECT * FROM quarantine").fetchall() for v in row)
    assert "jan@example.com" not in stored and "[masked]" in stored
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fiu_reports'").fetchall()[0][
        0
    ] or (
        con.execute(
            "SELECT count(*) FROM fiu_reports WHERE description LIKE '%ENTITYEXPANDED%' OR description LIKE '%LINKEDIN%'"
        ).fetchall()[0][0]
        == 0
    )
    con.close()
