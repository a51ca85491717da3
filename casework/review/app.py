"""The investigators' review page: a server-rendered web application over the DuckDB store.

Pages: login, the ranked queue (filters, paging, CSV), one alert (profile, reasons, timeline with
evidence, counterparties, network picture, history, case, audit, disposition forms, CSV, goAML
export for escalated alerts), and the audit log. Every page needs a login; every form carries the
session's CSRF token; an investigator reaching another bank's alert gets 404, as for an unknown one.
The page never opens the store: each request reads the current read-only snapshot that the last scoring run
published (pipelines/snapshot.py; many readers at once, while a batch writes the store) with the decisions laid
over it live from the casework database (pipelines/casework_db.py), where decisions are written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote

import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from casework import access_log, victims
from casework.dispositions import ACTIONS, DISMISS_REASONS, DispositionError, record_disposition
from casework.goaml import ExportError
from casework.review import formatting as fmt
from casework.review import queries as q
from casework.review.auth import Sessions, Throttled, User
from casework.review.case_pages import case_routes
from casework.review.fiu_pages import fiu_routes
from casework.review.pictures import network_svg, timeline_svg
from casework.review.rules_pages import rules_routes
from casework.review.web import login_required, message, post_checked, refusal_code
from casework.view import reading
from detectors.scoring import mask_identifiers
from pipelines import snapshot
from pipelines.casework_db import case_ref, open_casework

COOKIE, LOGIN_COOKIE = "thb_session", "thb_login"
# free text (payment descriptions) may carry identifiers the extract contract keeps out of id columns


def masked(text) -> str:
    return "" if text is None else mask_identifiers(str(text))  # the same masking as stored run errors


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_BODY = 64 * 1024  # forms are small; anything larger is refused with 413 before it is read whole


def csv_cell(column: str, v):
    """A CSV cell as the page would show it: identifiers in free text masked, and text that a spreadsheet would
    run as a formula prefixed with ' (numbers stay numbers; id columns are pseudonyms, never free text)."""
    if v is None:
        return ""
    if isinstance(v, list):
        v = ";".join(str(x) for x in v)
    if not isinstance(v, str):
        return v
    if not column.endswith("_id"):
        v = masked(v)
    return "'" + v if v.startswith(FORMULA_START) else v


def case_label(case_id: str | None, user: User, key: str) -> str | None:
    """A case id as this user may see it: analysts the id, a bank's investigators its keyed hash (case_ref)."""
    if not case_id or user.sees_all_banks:
        return case_id
    return case_ref(case_id, key)


def case_labels(rows: pl.DataFrame, user: User, key: str) -> pl.DataFrame:
    """Rows with case ids, and the case ids quoted in reasons ('..., in case C-...'), as this user may see them."""
    if user.sees_all_banks or rows.is_empty():
        return rows
    ids = [c for c in rows["case_id"].unique().to_list() if c]
    labels = [case_label(c, user, key) for c in ids]
    if not ids:
        return rows
    return rows.with_columns(pl.col("case_id").replace(ids, labels), pl.col("reasons").str.replace_many(ids, labels))


TEMPLATES = Path(__file__).resolve().parent / "templates"


class Review:
    def __init__(
        self,
        db_path: str | Path,
        users: dict,
        exporter=None,
        goaml_out: str | Path | None = None,
        secret: bytes | None = None,
        secure_cookies: bool = False,
        casework_url: str | None = None,
    ):
        self.db_path = str(db_path)
        self.cw = open_casework(db_path, casework_url)
        snapshot.ensure(self.db_path, casework_url)  # a store scored before snapshots existed gets its first one now
        self.secure_cookies = secure_cookies
        self.sessions = Sessions(users, secret)
        self.case_key = self.cw.case_ref_key()
        self.exporter = exporter
        self.goaml_out = Path(goaml_out) if goaml_out else None
        self.lock = threading.Lock()
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.filters["eur"] = fmt.eur
        self.env.filters["short_id"] = fmt.short_id
        self.env.filters["clip"] = fmt.clip
        self.env.filters["tidy"] = fmt.tidy_amounts
        self.env.filters["short"] = lambda v, n=8: "" if v is None else str(v)[:n]
        self.env.globals["quote"] = lambda v: quote(str(v), safe="")
        self.env.filters["masked"] = masked
        self.env.globals["case_label"] = lambda case_id, user: case_label(case_id, user, self.case_key)

    @contextmanager
    def db(self):
        with reading(self.db_path, self.cw) as con:
            con.execute("SET VARIABLE case_ref_key = ?", [self.case_key])  # case_queries.py CASE_REF
            yield con

    # ------------------------------------------------------------------ plumbing
    def page(self, name: str, user: User | None = None, csrf: str | None = None, status: int = 200, **ctx) -> HTMLResponse:
        html = self.env.get_template(name).render(user=user, csrf=csrf, **ctx)
        return HTMLResponse(
            html,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
            },
        )

    def no_alert(self, user: User, csrf: str, alert_id: str) -> HTMLResponse:
        """Unknown and another bank's alert look the same: 404."""
        return self.page("error.html", user, csrf, status=404, message="No such alert for you.")

    def who(self, request: Request) -> tuple[User, str] | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    @staticmethod
    async def form(request: Request) -> dict[str, str] | None:
        """The posted form, or None when it is larger than MAX_BODY (checked while reading, not trusting the header)."""
        try:
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return None
        except ValueError:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        body = b"".join(chunks).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def cookie(self, r: Response, name: str, value: str) -> None:
        r.set_cookie(name, value, httponly=True, samesite="strict", secure=self.secure_cookies)

    def accessed(self, request: Request, user: User, action: str, kind: str, object_id=None, bank_id=None, reason=None) -> None:
        """Every page or export that shows an account, alert, case or report: who, when, what, from where (written to
        the casework database: the page never writes the store)."""
        addr = request.client.host if request.client else None
        access_log.log_access(self.cw, user.name, user.role, action, kind, object_id, bank_id, addr, reason)

    def audit_rows(self, con, user: User, alert_id: str | list[str] | None = None) -> pl.DataFrame:
        """The audit entries the user may see, cases named in notes as the user may name them: an entry written before
        case references were keyed named a case by its id (an analyst's decision) or by its unkeyed hash."""
        rows = q.audit_entries(self.cw, user, alert_id)
        if user.sees_all_banks or rows.is_empty():
            return rows
        ids = [r[0] for r in con.execute("SELECT DISTINCT case_id FROM alerts WHERE case_id IS NOT NULL").fetchall()]
        if not ids:
            return rows
        unkeyed = ["C-" + hashlib.sha256(c.encode()).hexdigest()[:12] for c in ids]
        keyed = [case_ref(c, self.case_key) for c in ids]
        return rows.with_columns(pl.col("note").str.replace_many(ids + unkeyed, keyed + keyed))

    def export_goaml(self, request: Request, user: User, **which) -> bool:
        """Write the goAML report of an alert or a case (`which`: alert= or case=) as this user, logged with their role
        and address and named as their bank names the case; False when nothing was written (not escalated, or
        reported a moment ago by a second click)."""
        try:
            with self.lock:
                written, _ = self.exporter.export(
                    self.goaml_out,
                    user.name,
                    role=user.role,
                    address=request.client.host if request.client else None,
                    bank=None if user.sees_all_banks else user.bank,
                    **which,
                )
        except ExportError:
            return False
        return bool(written)

    def bad_request(self, user: User, csrf: str) -> HTMLResponse:
        return self.page("error.html", user, csrf, status=400, message="Bad request: a filter or page number is not valid.")

    # ------------------------------------------------------------------ login
    async def login_page(self, request: Request):
        token = self.sessions.login_token()
        r = self.page("login.html", token=token, next=request.query_params.get("next", "/cases"), error=None)
        self.cookie(r, LOGIN_COOKIE, token)
        return r

    async def login(self, request: Request):
        form = await self.form(request)
        if form is None:
            return self.page("error.html", status=413, message="The form was too large.")
        nxt = form.get("next") or "/cases"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/cases"
        if not self.sessions.valid_login_token(form.get("token"), request.cookies.get(LOGIN_COOKIE)):
            return self.page(
                "login.html", status=403, token=self.sessions.login_token(), next=nxt, error="The login form expired; try again."
            )
        addr = request.client.host if request.client else ""
        try:
            # scrypt takes a while by design: in a worker thread, so other people's pages do not wait for it
            cookie = await run_in_threadpool(self.sessions.login, form.get("username", ""), form.get("password", ""), addr)
            status, error = 401, "Unknown user or wrong password."
        except Throttled as t:
            cookie, status = None, 429
            error = (
                "Too many failed logins: this login is locked; ask an analyst to unlock it."
                if str(t) == "locked"
                else "Too many failed logins: wait a little and try again."
            )
        if cookie is None:
            token = self.sessions.login_token()
            r = self.page("login.html", status=status, token=token, next=nxt, error=error)
            self.cookie(r, LOGIN_COOKIE, token)
            return r
        r = RedirectResponse(nxt, status_code=303)
        self.cookie(r, COOKIE, cookie)
        r.delete_cookie(LOGIN_COOKIE)
        return r

    @post_checked
    async def logout(self, request, user, csrf, form):
        self.sessions.logout(request.cookies.get(COOKIE))
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE)
        return r

    @post_checked
    async def unlock(self, request, user, csrf, form):
        """Analysts lift a login lock: a user name, or a client address."""
        if not user.sees_all_banks:
            return self.page("error.html", user, csrf, status=404, message="No such page for you.")
        keys = [f"user:{form['user']}"] if form.get("user") else []  # the audit page lists locked logins with a button each
        keys += [f"addr:{form['addr']}"] if form.get("addr") else []
        done = [k for k in keys if self.sessions.throttle.clear(k)]
        return self.page(
            "error.html", user, csrf, status=200 if done else 404, message="Unlocked." if done else "Nothing to unlock."
        )

    # ------------------------------------------------------------------ queue
    @login_required
    async def queue(self, request: Request, user: User, csrf: str):
        f = q.QueueFilter.from_params(request.query_params)
        if f is None:
            return self.bad_request(user, csrf)
        with self.db() as con:
            rows, total = q.queue(con, user, f)
            rows = case_labels(rows, user, self.case_key)
            choices = q.filter_choices(con, user)
            self.accessed(request, user, "view", "queue", f.query(), user.bank or f.bank)
        pages = max(1, -(-total // q.PAGE))
        return self.page("queue.html", user, csrf, rows=rows.to_dicts(), total=total, f=f, pages=pages, choices=choices)

    @login_required
    async def queue_csv(self, request: Request, user: User, csrf: str):
        f = q.QueueFilter.from_params(request.query_params)
        if f is None:
            return self.bad_request(user, csrf)
        with self.db() as con:
            rows, _ = q.queue(con, user, f, limit=None)
            self.accessed(request, user, "export", "queue", f.query(), user.bank or f.bank)
        cols = [
            "rank",
            "alert_id",
            "bank_id",
            "account_id",
            "score",
            "typology",
            "status",
            "case_id",
            "case_role",
            "age_days",
            "reasons",
        ]
        rows = case_labels(rows, user, self.case_key)
        return self._csv(rows.select(cols), "queue.csv")

    @staticmethod
    def _csv(df, name: str) -> Response:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(df.columns)
        for r in df.iter_rows():
            w.writerow([csv_cell(c, v) for c, v in zip(df.columns, r)])
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}  # like the pages
        return Response(buf.getvalue(), media_type="text/csv", headers=headers)

    # ------------------------------------------------------------------ one alert
    @login_required
    async def alert(self, request: Request, user: User, csrf: str):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            a = q.alert(con, user, alert_id)
            if a is None:
                return self.no_alert(user, csrf, alert_id)
            end = q.window_end(con)
            protected = victims.is_victim(a) and not access_log.revealed(self.cw, user.name, alert_id)
            self.accessed(request, user, "view", "alert", alert_id, a["bank_id"])
            tl = q.timeline(con, a["bank_id"], a["account_id"], a["evidence"])
            tl = victims.hide(tl) if protected else tl
            ev = q.timeline(con, a["bank_id"], a["account_id"], a["evidence"], limit=None).filter(pl.col("evidence"))
            ev = victims.hide(ev) if protected else ev
            net = q.network(con, user, a["account_id"])
            net = net.head(0) if protected else net  # who a victim is linked to is a counterparty too
            ctx = dict(
                a=a,
                protected=protected,
                victim=victims.is_victim(a),
                timeline=tl.to_dicts(),
                evidence=ev.to_dicts(),
                case_ref=case_label(a["case_id"], user, self.case_key),
                timeline_svg=timeline_svg(tl),
                counterparties=[] if protected else q.counterparties(con, a["bank_id"], a["account_id"]).to_dicts(),
                network_svg=network_svg(a["account_id"], net),
                network=net.to_dicts(),
                history=q.history(con, alert_id).to_dicts(),
                case=q.case_members(con, user, a["case_id"], alert_id).to_dicts(),
                audit=self.audit_rows(con, user, alert_id).to_dicts(),
                age_band=q.age_band(a["birth_year"], end.year if end else datetime.now().year),
                account_age=fmt.age(a["opened_on"], end),
                reasons=[
                    fmt.tidy_amounts(
                        r.replace(a["case_id"], fmt.short_id(case_label(a["case_id"], user, self.case_key)))
                        if a["case_id"]
                        else r
                    )
                    for r in (a["reasons"] or "").split("; ")
                    if r
                ],
                actions=[k for k, (_, allowed) in ACTIONS.items() if a["status"] in allowed],
                dismiss_reasons=DISMISS_REASONS,
                can_export=bool(self.exporter) and a["status"] == "escalated",
                message=message(request.query_params.get("msg")),
            )
        return self.page("alert.html", user, csrf, **ctx)

    @login_required
    async def alert_csv(self, request: Request, user: User, csrf: str):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            a = q.alert(con, user, alert_id)
            if a is None:
                return self.no_alert(user, csrf, alert_id)
            tl = q.timeline(con, a["bank_id"], a["account_id"], a["evidence"], limit=None)
            self.accessed(request, user, "export", "alert", alert_id, a["bank_id"])
        tl = victims.for_export(tl.with_columns(pl.lit(alert_id).alias("alert_id")), a)
        return self._csv(tl, f"alert-{alert_id}.csv")

    @post_checked
    async def dispose(self, request, user, csrf, form):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            if q.alert(con, user, alert_id) is None:
                return self.no_alert(user, csrf, alert_id)
            try:
                record_disposition(
                    self.cw, alert_id, form.get("action", ""), user.name, form.get("reason") or None, form.get("note") or None
                )
                msg = f"recorded-{form.get('action')}"
            except DispositionError as e:
                msg = refusal_code(e)
        return RedirectResponse(f"/alerts/{quote(alert_id)}?msg={msg}", status_code=303)

    @post_checked
    async def reveal(self, request, user, csrf, form):
        """A victim's counterparties and free text, for one hour, to an investigator who gives a reason (logged)."""
        alert_id = request.path_params["alert_id"]
        reason = victims.reveal_reason(form.get("reason"))
        with self.db() as con:
            a = q.alert(con, user, alert_id)
            if a is None:
                return self.no_alert(user, csrf, alert_id)
            if reason:
                self.accessed(request, user, "reveal", "alert", alert_id, a["bank_id"], reason)
        return RedirectResponse(
            f"/alerts/{quote(alert_id)}?msg={'revealed' if reason else 'needs-reveal-reason'}", status_code=303
        )

    @post_checked
    async def goaml(self, request, user, csrf, form):
        alert_id = request.path_params["alert_id"]
        with self.db() as con:
            if q.alert(con, user, alert_id) is None:
                return self.no_alert(user, csrf, alert_id)
        if not self.exporter:
            return self.page("error.html", user, csrf, status=404, message="goAML export is not configured (serve --identities).")
        msg = "goaml-written" if self.export_goaml(request, user, alert=alert_id) else "goaml-refused"
        return RedirectResponse(f"/alerts/{quote(alert_id)}?msg={msg}", status_code=303)

    # ------------------------------------------------------------------ audit log
    @login_required
    async def audit(self, request: Request, user: User, csrf: str):
        with self.db() as con:
            rows = self.audit_rows(con, user)
        self.accessed(request, user, "view", "audit_log")
        # analysts see locked user names that are users: a name typed wrong (an e-mail address, say) locks nobody
        users = self.sessions.users
        locked = [k for k in self.sessions.throttle.locked() if k.removeprefix("user:") in users] if user.sees_all_banks else []
        return self.page("audit.html", user, csrf, rows=rows.to_dicts(), locked=locked)

    @login_required
    async def access(self, request: Request, user: User, csrf: str):
        """The access log: for auditors only."""
        if not user.is_auditor:
            return self.page("error.html", user, csrf, status=404, message="No such page for you.")
        rows = access_log.entries(self.cw)
        self.accessed(request, user, "view", "access_log")
        return self.page("access.html", user, csrf, rows=rows.to_dicts())

    async def home(self, request: Request):
        return RedirectResponse("/cases", status_code=303)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.home),
                Route("/login", self.login_page, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/unlock", self.unlock, methods=["POST"]),
                Route("/queue", self.queue),
                Route("/queue.csv", self.queue_csv),
                Route("/alerts/{alert_id}.csv", self.alert_csv),
                Route("/alerts/{alert_id}", self.alert),
                Route("/alerts/{alert_id}/disposition", self.dispose, methods=["POST"]),
                Route("/alerts/{alert_id}/goaml", self.goaml, methods=["POST"]),
                Route("/alerts/{alert_id}/reveal", self.reveal, methods=["POST"]),
                Route("/audit", self.audit),
                Route("/access", self.access),
                *fiu_routes(self),
                *case_routes(self),
                *rules_routes(self),  # tuning: rule effectiveness
            ]
        )
