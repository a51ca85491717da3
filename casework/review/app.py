"""The investigators' review page: a server-rendered web application over the DuckDB store.

Pages: login, the ranked queue (filters, paging, CSV), one alert (profile, reasons, timeline with
evidence, counterparties, network picture, history, case, audit, disposition forms, CSV, goAML
export for escalated alerts), and the audit log. Every page needs a login; every form carries the
session's CSRF token; an investigator reaching another bank's alert gets 404, as for an unknown one.
The store is opened per request under one lock (DuckDB allows one writing process per file, and
the scoring job needs it between requests).
"""
from __future__ import annotations

import csv
import io
import re
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote

import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pipelines import store
from casework.dispositions import ACTIONS, DISMISS_REASONS, DispositionError, record_disposition
from casework.review import queries as q
from casework.review.auth import Sessions, User
from casework.review.pictures import network_svg, timeline_svg
from casework.review.fiu_pages import fiu_routes

COOKIE, LOGIN_COOKIE = "thb_session", "thb_login"
# free text (payment descriptions) may carry identifiers the extract contract keeps out of id columns
RAW_IDENTIFIER = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b|[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d -]{8,}\d")


def masked(text) -> str:
    return "" if text is None else RAW_IDENTIFIER.sub("[masked]", str(text))


TEMPLATES = Path(__file__).resolve().parent / "templates"


def login_required(handler):
    """GET handlers: a valid session, else the login page (coming back here after)."""
    async def wrapped(self, request: Request):
        session = self.who(request)
        if session is None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        return await handler(self, request, *session)
    return wrapped


def post_checked(handler):
    """POST handlers: login and a CSRF token that matches the session's."""
    async def wrapped(self, request: Request):
        session = self.who(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        user, csrf = session
        form = await self.form(request)
        if form.get("csrf") != csrf:
            return self.page("error.html", user, csrf, status=403, message="The form was stale or forged (CSRF check failed). Reload the page and try again.")
        return await handler(self, request, user, csrf, form)
    return wrapped


class Review:
    def __init__(self, db_path: str | Path, users: dict, exporter=None, goaml_out: str | Path | None = None,
                 secret: bytes | None = None):
        self.db_path = str(db_path)
        self.sessions = Sessions(users, secret)
        self.exporter = exporter
        self.goaml_out = Path(goaml_out) if goaml_out else None
        self.lock = threading.Lock()
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.filters["eur"] = lambda v: "-" if v is None else f"EUR {float(v):,.2f}"
        self.env.filters["short"] = lambda v, n=8: "" if v is None else str(v)[:n]
        self.env.globals["quote"] = lambda v: quote(str(v), safe="")
        self.env.filters["masked"] = masked

    @contextmanager
    def db(self):
        with self.lock:
            con = store.connect(self.db_path)
            try:
                yield con
            finally:
                con.close()

    # ------------------------------------------------------------------ plumbing
    def page(self, name: str, user: User | None = None, csrf: str | None = None, status: int = 200, **ctx) -> HTMLResponse:
        html = self.env.get_template(name).render(user=user, csrf=csrf, **ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                               "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'"})

    def no_alert(self, user: User, csrf: str, alert_id: str) -> HTMLResponse:
        """Unknown and another bank's alert look the same: 404."""
        return self.page("error.html", user, csrf, status=404, message=f"No alert {alert_id} for you.")

    def who(self, request: Request) -> tuple[User, str] | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    # ------------------------------------------------------------------ login
    async def login_page(self, request: Request):
        token = self.sessions.login_token()
        r = self.page("login.html", token=token, next=request.query_params.get("next", "/queue"), error=None)
        r.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict")
        return r

    async def login(self, request: Request):
        form = await self.form(request)
        nxt = form.get("next") or "/queue"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/queue"
        if not self.sessions.valid_login_token(form.get("token"), request.cookies.get(LOGIN_COOKIE)):
            return self.page("login.html", status=403, token=self.sessions.login_token(), next=nxt, error="The login form expired; try again.")
        cookie = self.sessions.login(form.get("username", ""), form.get("password", ""))
        if cookie is None:
            token = self.sessions.login_token()
            r = self.page("login.html", status=401, token=token, next=nxt, error="Unknown user or wrong password.")
            r.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict")
            return r
        r = RedirectResponse(nxt, status_code=303)
        r.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        r.delete_cookie(LOGIN_COOKIE)
        return r

    @post_checked
    async def logout(self, request, user, csrf, form):
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE)
        return r

    # ------------------------------------------------------------------ queue
    @login_required
    async def queue(self, request: Request, user: User, csrf: str):
        f = q.QueueFilter.from_params(request.query_params)
        with self.db() as con:
            rows, total = q.queue(con, user, f)
            choices = q.filter_choices(con, user)
        pages = max(1, -(-total // q.PAGE))
        return self.page("queue.html", user, csrf, rows=rows.to_dicts(), total=total, f=f, pages=pages, choices=choices)

    @login_required
    async def queue_csv(self, request: Request, user: User, csrf: str):
        f = q.QueueFilter.from_params(request.query_params)
        with self.db() as con:
            rows, _ = q.queue(con, user, f, limit=None)
        cols = ["rank", "alert_id", "bank_id", "account_id", "score", "typology", "status", "case_id", "case_role", "age_days", "reasons"]
        return self._csv(rows.select(cols), "queue.csv")

    @staticmethod
    def _csv(df, name: str) -> Response:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(df.columns)
        for r in df.iter_rows():
            w.writerow(["" if v is None else (";".join(v) if isinstance(v, list) else v) for v in r])
        return Response(buf.getvalue(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # ------------------------------------------------------------------ one alert
    @login_required
    async def alert(self, request: Request, user: User, csrf: str):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            a = q.alert(con, user, alert_id)
            if a is None:
                return self.no_alert(user, csrf, alert_id)
            end = q.window_end(con)
            tl = q.timeline(con, a["bank_id"], a["account_id"], a["evidence"])
            ctx = dict(
                a=a, timeline=tl.to_dicts(), timeline_svg=timeline_svg(tl),
                counterparties=q.counterparties(con, a["bank_id"], a["account_id"]).to_dicts(),
                network_svg=network_svg(a["account_id"], net := q.network(con, user, a["account_id"])), network=net.to_dicts(),
                history=q.history(con, alert_id).to_dicts(), case=q.case_members(con, user, a["case_id"], alert_id).to_dicts(),
                audit=q.audit_entries(con, user, alert_id).to_dicts(),
                age_band=q.age_band(a["birth_year"], end.year if end else datetime.now().year),
                account_days=(end.date() - a["opened_on"]).days if end and a["opened_on"] else None,
                reasons=[r for r in (a["reasons"] or "").split("; ") if r],
                actions=[k for k, (_, allowed) in ACTIONS.items() if a["status"] in allowed],
                dismiss_reasons=DISMISS_REASONS, can_export=bool(self.exporter) and a["status"] == "escalated",
                message=request.query_params.get("msg"))
        return self.page("alert.html", user, csrf, **ctx)

    @login_required
    async def alert_csv(self, request: Request, user: User, csrf: str):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            a = q.alert(con, user, alert_id)
            if a is None:
                return self.no_alert(user, csrf, alert_id)
            tl = q.timeline(con, a["bank_id"], a["account_id"], a["evidence"], limit=None)
        tl = tl.with_columns(pl.lit(alert_id).alias("alert_id"))
        return self._csv(tl, f"alert-{alert_id}.csv")

    @post_checked
    async def dispose(self, request, user, csrf, form):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            if q.alert(con, user, alert_id) is None:
                return self.no_alert(user, csrf, alert_id)
            try:
                record_disposition(con, alert_id, form.get("action", ""), user.name, form.get("reason") or None, form.get("note") or None)
                msg = f"Recorded: {form.get('action')}"
            except DispositionError as e:
                msg = f"Not recorded: {e}"
        return RedirectResponse(f"/alerts/{quote(alert_id)}?msg={quote(msg)}", status_code=303)

    @post_checked
    async def goaml(self, request, user, csrf, form):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            if q.alert(con, user, alert_id) is None:
                return self.no_alert(user, csrf, alert_id)
        if not self.exporter:
            return self.page("error.html", user, csrf, status=404, message="goAML export is not configured (serve --identities).")
        with self.lock:
            written, refused = self.exporter.export(self.goaml_out, user.name, alert=alert_id)
        msg = f"goAML report written: {written[0].name}" if written else "goAML report not written: " + " ".join(refused)
        return RedirectResponse(f"/alerts/{quote(alert_id)}?msg={quote(msg)}", status_code=303)

    # ------------------------------------------------------------------ audit log
    @login_required
    async def audit(self, request: Request, user: User, csrf: str):
        with self.db() as con:
            rows = q.audit_entries(con, user)
        return self.page("audit.html", user, csrf, rows=rows.to_dicts())

    async def home(self, request: Request):
        return RedirectResponse("/queue", status_code=303)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.home), Route("/login", self.login_page, methods=["GET"]), Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]), Route("/queue", self.queue), Route("/queue.csv", self.queue_csv),
            Route("/alerts/{alert_id}.csv", self.alert_csv), Route("/alerts/{alert_id}", self.alert),
            Route("/alerts/{alert_id}/disposition", self.dispose, methods=["POST"]),
            Route("/alerts/{alert_id}/goaml", self.goaml, methods=["POST"]), Route("/audit", self.audit),
            *fiu_routes(self)])
