"""`thb-signals screen`: every enabled theme over a period's reports, subjects linked into networks, subjects ranked.

A subject is a pseudonymous account or person id: the account a report is about (`account_id`) or a private
counterparty (`counterparty_id` of type person). Money between subjects and a shared device link them; networks are
the connected components, so one receiver reported by a bank and by a money transfer office is one subject, and
the people paying him are one network with him. Businesses (hotels, lenders, platforms) never link subjects: they
would join everyone.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from casework.fiu.themes import Theme, ThemeError, create_period_view, load_themes, run_theme, sandbox
from pipelines import store
from pipelines.casework_db import open_casework
from schemas.contract import RE_DATE

# Points per piece of evidence; the subject list is ranked on their sum (reasons name each part).
WEIGHTS = {
    "theme": 3.0,
    "extra_typology": 1.0,
    "extra_entity": 0.75,
    "amount_per_ln_keur": 0.5,
    "escalated_alert": 3.0,
    "network_theme": 1.5,
    "in_theme_reports": 1.0,
}
MAX_LINK_ROUNDS = 50


class ScreenError(ValueError):
    pass


@dataclass
class ScreenResult:
    screen_id: str
    period_start: date
    period_end: date
    reports: int
    themes_run: list[str]
    theme_errors: list[str]
    subjects: pl.DataFrame
    files: dict


def check_screening(db: str | Path, start: date, end: date, theme_dirs: list[str] | None) -> None:
    """What would make a screening worth nothing, refused before one is recorded (it would become the latest screening,
    the one the FIU pages show): a themes folder that is not one, a store without FIU reports, a period without any."""
    for folder in theme_dirs or []:
        if not Path(folder).is_dir():
            raise ScreenError(f"--themes folder {folder}: not a folder of theme files")
    if not Path(db).is_file():
        raise ScreenError(f"no store at {db}")
    con = store.peek(Path(db))
    try:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fiu_reports'").fetchone()[0]:
            raise ScreenError(f"{db} holds no FIU reports (load an FIU extract or goAML reports with ingest first)")
        n, first, last = con.execute(
            """SELECT count(*) FILTER (WHERE timezone('Europe/Amsterdam', booked_at)::DATE BETWEEN ? AND ?),
                      min(timezone('Europe/Amsterdam', booked_at)::DATE), max(timezone('Europe/Amsterdam', booked_at)::DATE)
               FROM fiu_reports""",
            [start, end],
        ).fetchall()[0]
    finally:
        con.close()
    if not n:
        held = f"the store holds reports from {first} to {last}" if first else "the store holds none"
        raise ScreenError(f"no FIU reports in {start}..{end}: {held}")


def parse_period(text: str) -> tuple[date, date]:
    try:
        a, b = (part.strip() for part in text.split(".."))
        if not (re.match(RE_DATE, a) and re.match(RE_DATE, b)):  # fromisoformat also reads 2026-W27 (a week), 20260701
            raise ValueError(text)
        start, end = date.fromisoformat(a), date.fromisoformat(b)
    except ValueError:
        raise ScreenError(f"period {text!r}: expected YYYY-MM-DD..YYYY-MM-DD") from None
    if end < start:
        raise ScreenError(f"period {text!r} ends before it starts")
    return start, end


def _table_exists(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0])


def link_subjects(con: duckdb.DuckDBPyConnection, source: str = "fiu_period") -> None:
    """Temp tables `subject_reports` (subject_id, report_id, ...) and `subject_network` (subject_id, network_id)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE subject_reports AS
        SELECT account_id AS subject_id, report_id, reporting_entity, amount_eur FROM {source}
        UNION ALL
        SELECT counterparty_id, report_id, reporting_entity, amount_eur FROM {source}
        WHERE counterparty_type = 'person' AND counterparty_id IS NOT NULL""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE subject_edges AS
        WITH e AS (
            SELECT account_id AS a, counterparty_id AS b FROM {source} WHERE counterparty_type = 'person' AND counterparty_id IS NOT NULL
            UNION
            SELECT d.account_id, f.first_account FROM {source} d
            JOIN (SELECT device_id, min(account_id) AS first_account FROM {source} WHERE device_id IS NOT NULL GROUP BY 1) f USING (device_id))
        SELECT a, b FROM e WHERE a <> b UNION SELECT b, a FROM e WHERE a <> b""")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE subject_label AS SELECT DISTINCT subject_id AS node, subject_id AS comp FROM subject_reports"
    )
    for _ in range(MAX_LINK_ROUNDS):  # min-label propagation: one SQL pass per round, rounds ~ network diameter
        con.execute("""CREATE OR REPLACE TEMP TABLE subject_label_next AS
            SELECT l.node, least(l.comp, coalesce(min(n.comp), l.comp)) AS comp
            FROM subject_label l LEFT JOIN subject_edges e ON e.a = l.node LEFT JOIN subject_label n ON n.node = e.b
            GROUP BY l.node, l.comp""")
        changed = con.execute("""SELECT count(*) FROM subject_label_next x JOIN subject_label l USING (node)
                                 WHERE x.comp <> l.comp""").fetchall()[0][0]
        con.execute("CREATE OR REPLACE TEMP TABLE subject_label AS SELECT * FROM subject_label_next")
        if not changed:
            break
    con.execute("""CREATE OR REPLACE TEMP TABLE subject_network AS
        SELECT node AS subject_id, 'N-' || substr(md5(comp), 1, 12) AS network_id FROM subject_label""")


def _score(con: duckdb.DuckDBPyConnection, screen_id: str, start: date, end: date) -> pl.DataFrame:
    w = WEIGHTS
    escalated = (
        "SELECT DISTINCT account_id AS subject_id FROM alert_status WHERE status IN ('escalated', 'reported')"
        if _table_exists(con, "alert_status")
        else "SELECT CAST(NULL AS VARCHAR) AS subject_id WHERE false"
    )
    return con.sql(
        f"""
        WITH per AS (
            SELECT subject_id, count(DISTINCT report_id) AS reports, list(DISTINCT reporting_entity ORDER BY reporting_entity) AS entities,
                   sum(amount_eur) AS amount_eur, list(DISTINCT report_id ORDER BY report_id) AS report_ids
            FROM subject_reports GROUP BY 1),
        th AS (
            SELECT subject_id, list(DISTINCT theme_id ORDER BY theme_id) AS themes, list(DISTINCT typology ORDER BY typology) AS typologies
            FROM hits GROUP BY 1),
        in_hits AS (SELECT DISTINCT sr.subject_id FROM subject_reports sr JOIN (SELECT DISTINCT report_id FROM hits) h USING (report_id)),
        esc AS ({escalated}),
        net AS (
            SELECT n.network_id, count(DISTINCT n.subject_id) AS network_size,
                   list(DISTINCT h.theme_id ORDER BY h.theme_id) FILTER (WHERE h.theme_id IS NOT NULL) AS network_themes,
                   bool_or(e.subject_id IS NOT NULL) AS network_escalated
            FROM subject_network n LEFT JOIN hits h USING (subject_id) LEFT JOIN esc e ON e.subject_id = n.subject_id
            GROUP BY 1),
        s AS (
            SELECT per.subject_id, n.network_id, coalesce(th.themes, []) AS themes, coalesce(th.typologies, []) AS typologies,
                   per.entities AS reporting_entities, per.reports, per.amount_eur, e.subject_id IS NOT NULL AS escalated_alert,
                   net.network_size, coalesce(net.network_themes, []) AS network_themes, net.network_escalated,
                   ih.subject_id IS NOT NULL AS in_theme_reports, per.report_ids
            FROM per JOIN subject_network n USING (subject_id) JOIN net USING (network_id)
            LEFT JOIN th USING (subject_id) LEFT JOIN esc e ON e.subject_id = per.subject_id
            LEFT JOIN in_hits ih ON ih.subject_id = per.subject_id),
        p AS (
            SELECT *,
                   {w["theme"]} * len(themes) AS p_themes,
                   {w["extra_typology"]} * greatest(len(typologies) - 1, 0) AS p_typ,
                   {w["extra_entity"]} * least(len(reporting_entities) - 1, 4) AS p_ent,
                   {w["amount_per_ln_keur"]} * ln(1 + amount_eur / 1000) AS p_amt,
                   {w["escalated_alert"]} * (CASE WHEN escalated_alert THEN 1 WHEN network_escalated THEN 0.5 ELSE 0 END) AS p_esc,
                   {w["network_theme"]} * least(len(network_themes), 3) AS p_net,
                   {w["in_theme_reports"]} * CAST(in_theme_reports AS INTEGER) AS p_in
            FROM s)
        SELECT ? AS screen_id, ?::DATE AS period_start, ?::DATE AS period_end,
               row_number() OVER (ORDER BY score DESC, subject_id) AS "rank", subject_id, network_id, score, themes, typologies,
               reporting_entities, reports, amount_eur, escalated_alert, network_size, network_themes,
               concat_ws('; ',
                   CASE WHEN len(themes) > 0 THEN 'themes: ' || array_to_string(themes, ', ') END,
                   CASE WHEN len(reporting_entities) > 1 THEN 'reported by ' || len(reporting_entities) || ' entities: '
                        || array_to_string(reporting_entities, ', ') END,
                   CASE WHEN escalated_alert THEN 'escalated bank alert on this account'
                        WHEN network_escalated THEN 'escalated bank alert in its network' END,
                   CASE WHEN network_size > 1 THEN 'network of ' || network_size || ' subjects'
                        || CASE WHEN len(network_themes) > 0 THEN ' hit by ' || array_to_string(network_themes, ', ') ELSE '' END END,
                   printf('EUR %,.0f in %d report(s)', amount_eur, reports)) AS reasons,
               report_ids, now() AS created_at
        FROM (SELECT *, round(p_themes + p_typ + p_ent + p_amt + p_esc + p_net + p_in, 3) AS score FROM p)
        ORDER BY "rank" """,
        params=[screen_id, start, end],
    ).pl()


def screen(
    db_path: str | Path,
    period_start: date,
    period_end: date,
    theme_dirs: list[str | Path] | None = None,
    out: str | Path | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> ScreenResult:
    """Run the themes over the period, link, score and store the ranked subjects (and a parquet when `out` is given)."""
    own = con is None
    con = con or store.connect(db_path)
    try:
        if db_path:  # decisions live in the casework database: which alerts were escalated is read there
            con.register("alert_status", open_casework(db_path, create=False).statuses().to_arrow())
        themes, problems = load_themes(theme_dirs)
        themes = [t for t in themes if t.enabled]
        n_reports = create_period_view(con, period_start, period_end)
        screen_id = f"screen-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
        frames, ran = [], []
        box = sandbox(con)  # themes run apart from the store, on a copy of fiu_period: no files, URLs or other tables
        try:
            for t in themes:
                try:
                    df = run_theme(box, t, period_start, period_end)
                except ThemeError as e:
                    problems.append(f"theme {t.id} ({Path(t.path).name}): {e}")
                    continue
                ran.append(t.id)
                frames.append(df.with_columns(pl.lit(t.id).alias("theme_id"), pl.lit(t.typology).alias("typology")))
        finally:
            box.close()
        hits = (
            pl.concat(frames)
            if frames
            else pl.DataFrame(schema={"subject_id": pl.Utf8, "report_id": pl.Utf8, "theme_id": pl.Utf8, "typology": pl.Utf8})
        )
        con.register("hits_df", hits)
        con.execute("CREATE OR REPLACE TEMP TABLE hits AS SELECT * FROM hits_df")
        con.unregister("hits_df")
        link_subjects(con)
        subjects = _score(con, screen_id, period_start, period_end)
        con.execute("BEGIN TRANSACTION")
        con.execute(
            """INSERT INTO fiu_theme_hits SELECT ?, theme_id, typology, subject_id, report_id, ?, ?, now() FROM hits""",
            [screen_id, period_start, period_end],
        )
        con.register("subjects_df", subjects)
        con.execute("INSERT INTO fiu_subjects SELECT * FROM subjects_df")
        con.unregister("subjects_df")
        con.execute(
            "INSERT INTO fiu_screens VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            [screen_id, period_start, period_end, n_reports, ran, json.dumps(problems), subjects.height],
        )
        con.execute("COMMIT")
        files = {}
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            files["parquet"] = str(Path(out) / "fiu_subjects.parquet")
            subjects.write_parquet(files["parquet"])
            files["hits"] = str(Path(out) / "fiu_theme_hits.parquet")
            hits.write_parquet(files["hits"])
        return ScreenResult(screen_id, period_start, period_end, n_reports, ran, problems, subjects, files)
    finally:
        if own:
            con.close()


def theme_summary(themes: list[Theme]) -> str:
    return "\n".join(
        f"{t.id:<34} {t.typology:<22} [{', '.join(t.indicators)}] {'' if t.enabled else '(disabled)'}" for t in themes
    )
