"""The FIU queue on the review site: the latest screening's ranked subjects, the reports behind one subject, and a
decision per report (suspicious or not). For analysts only: an investigator gets the same 404 as an unknown page."""

from __future__ import annotations

from urllib.parse import quote

import duckdb
import polars as pl
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from casework.dispositions import FIU_DECISIONS, DispositionError, record_fiu_decision
from casework.review.web import login_required, message, post_checked, refusal_code

FIU_PAGE = 100


def _exists(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0])


def latest_subjects(con: duckdb.DuckDBPyConnection, limit: int = FIU_PAGE) -> tuple[dict | None, pl.DataFrame]:
    if not _exists(con, "fiu_screens"):
        return None, pl.DataFrame()
    scr = con.sql(
        "SELECT screen_id, period_start, period_end, reports, themes, created_at FROM fiu_screens ORDER BY created_at DESC LIMIT 1"
    ).pl()
    if scr.is_empty():
        return None, pl.DataFrame()
    screen = scr.row(0, named=True)
    rows = con.sql(
        """SELECT "rank", subject_id, network_id, score, themes, reporting_entities, reports, amount_eur, reasons
                      FROM fiu_subjects WHERE screen_id = ? ORDER BY "rank" LIMIT ?""",
        params=[screen["screen_id"], limit],
    ).pl()
    return screen, rows


def subject_reports(con: duckdb.DuckDBPyConnection, subject_id: str) -> tuple[dict | None, pl.DataFrame]:
    s = con.sql("""SELECT * FROM fiu_subjects WHERE subject_id = ? ORDER BY created_at DESC LIMIT 1""", params=[subject_id]).pl()
    if s.is_empty():
        return None, pl.DataFrame()
    subj = s.row(0, named=True)
    reps = con.sql(
        """WITH d AS (SELECT report_id, arg_max(decision, decided_at) AS decision, arg_max(user_name, decided_at) AS decided_by
                                 FROM fiu_decisions GROUP BY 1)
                      SELECT r.report_id, r.reporting_entity, r.booked_at, r.direction, r.amount_eur, r.channel, r.account_id,
                             r.counterparty_id, r.counterparty_country, r.location_city, r.indicator_code, d.decision, d.decided_by
                      FROM fiu_reports r LEFT JOIN d USING (report_id)
                      WHERE list_contains(?, r.report_id) ORDER BY r.reporting_entity, r.booked_at, r.report_id""",
        params=[subj["report_ids"]],
    ).pl()
    return subj, reps


def fiu_routes(review) -> list[Route]:
    """Routes bound to a Review (its session checks and templates)."""

    def analysts_only(user, csrf):
        return review.page("error.html", user, csrf, status=404, message="No such page for you.")

    @login_required
    async def queue(self, request: Request, user, csrf):
        if not user.sees_all_banks:
            return analysts_only(user, csrf)
        with self.db() as con:
            screen, rows = latest_subjects(con)
            self.accessed(request, user, "view", "fiu_queue", screen["screen_id"] if screen else None)
        return self.page("fiu_queue.html", user, csrf, screen=screen, rows=rows.to_dicts())

    @login_required
    async def subject(self, request: Request, user, csrf):
        if not user.sees_all_banks:
            return analysts_only(user, csrf)
        sid = request.path_params["subject_id"]
        with self.db() as con:
            subj, reps = subject_reports(con, sid) if _exists(con, "fiu_subjects") else (None, None)
            if subj is not None:
                self.accessed(request, user, "view", "subject", sid)
        if subj is None:
            return self.page("error.html", user, csrf, status=404, message="No such subject.")
        by_entity = [
            (e, g.to_dicts()) for (e,), g in reps.group_by("reporting_entity", maintain_order=True)
        ]  # what each entity saw
        return self.page(
            "fiu_subject.html",
            user,
            csrf,
            s=subj,
            by_entity=by_entity,
            decisions=FIU_DECISIONS,
            msg=message(request.query_params.get("msg")),
        )

    @post_checked
    async def decide(self, request, user, csrf, form):
        if not user.sees_all_banks:
            return analysts_only(user, csrf)
        rid, back = request.path_params["report_id"], form.get("subject", "")
        with self.db() as con:
            try:
                record_fiu_decision(
                    self.cw,
                    rid,
                    form.get("decision", ""),
                    user.name,
                    form.get("typology") or None,
                    form.get("note") or None,
                    reports=con,
                )
                msg = f"fiu-recorded-{form.get('decision')}"
            except DispositionError as e:
                msg = refusal_code(e)
        return RedirectResponse(f"/fiu/subjects/{quote(back, safe='')}?msg={msg}", status_code=303)

    def bind(handler):
        async def endpoint(request: Request):
            return await handler(review, request)

        return endpoint

    return [
        Route("/fiu", bind(queue)),
        Route("/fiu/subjects/{subject_id}", bind(subject)),
        Route("/fiu/reports/{report_id}/decision", bind(decide), methods=["POST"]),
    ]
