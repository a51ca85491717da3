"""Prefect flow for the FIU's monthly screening (deployment `fiu-monthly-screen` in prefect.yaml).

Same pattern as pipelines/flows.py: the task gets paths, opens and closes its own DuckDB connection, retries only a
locked database or an I/O error, and publishes a table artifact without identifiers beyond pseudonymous ids.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.tasks import exponential_backoff

from pipelines.flows import retry_if_transient


def previous_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=retry_if_transient)
def screen_task(db: str, start: str, end: str, themes: list[str] | None, out: str | None) -> dict:
    from casework.fiu.screen import screen

    res = screen(db, date.fromisoformat(start), date.fromisoformat(end), themes, out)
    top = res.subjects.head(25).select("rank", "score", "subject_id", "network_id", "reasons").to_dicts()
    return {
        "screen_id": res.screen_id,
        "reports": res.reports,
        "themes_run": res.themes_run,
        "theme_errors": res.theme_errors,
        "subjects": res.subjects.height,
        "files": res.files,
        "top": top,
    }


@flow(name="fiu-screen")
def fiu_screen_flow(db: str, out: str | None = None, period: str | None = None, themes: list[str] | None = None) -> dict:
    """Screen one period's FIU reports with every enabled theme (default: the previous calendar month)."""
    from casework.fiu.screen import check_screening, parse_period

    log = get_run_logger()
    start, end = parse_period(period) if period else previous_month(datetime.now(timezone.utc).date())
    check_screening(db, start, end, themes)  # as `screen` refuses: nothing recorded for an empty period or no themes
    res = screen_task(db, start.isoformat(), end.isoformat(), themes, out)
    for line in res["theme_errors"]:
        log.warning("theme not run: %s", line)
    create_table_artifact(
        key="fiu-top-subjects", table=res["top"], description=f"Top subjects of {res['screen_id']} ({start}..{end})"
    )
    create_markdown_artifact(
        key="fiu-screen-summary",
        markdown=(
            f"**{res['screen_id']}**: {res['reports']} reports in {start}..{end}, themes run: {', '.join(res['themes_run'])}; "
            f"{res['subjects']} subjects ranked."
            + ("\n\nNot run:\n" + "\n".join(f"- {x}" for x in res["theme_errors"]) if res["theme_errors"] else "")
        ),
    )
    if res["theme_errors"]:  # recorded with the themes that ran; the run fails so that Prefect's notifications say so
        raise RuntimeError(f"{len(res['theme_errors'])} theme(s) not run: {'; '.join(res['theme_errors'])}"[:2000])
    return res
