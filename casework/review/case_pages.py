"""The case pages of the review site: the case queue (the default view), one case (its network, money over time, every
account's reasons, the proceeds of its likely controllers and employers) and decisions on a whole case.

A case-level decision is recorded per alert through casework.dispositions.record_disposition, so every alert keeps its
own audit entry; it applies to the case's alerts the user may decide (their bank's) that are in a state the action
applies to, and says how many it skipped. Bank isolation is the alert queue's: a case is visible when one of its alerts
is, another bank's accounts show without their ids, alerts or reasons, and an unknown or foreign case is a 404.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import polars as pl
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from casework.dispositions import ACTIONS, DISMISS_REASONS, MAX_NOTE, DispositionError, clean_note, record_disposition
from casework.review import case_queries as cq
from casework.review import queries as q
from casework.review.case_pictures import case_network_svg, weekly_bars_svg
from casework.review.formatting import age, short_account, short_id, tidy_amounts
from casework.review.web import login_required, post_checked

CASE_ACTIONS = ("escalate", "dismiss")
CASE_MESSAGES = {
    **{f"case-{a}": f"Recorded {a} on the case's alerts" for a in CASE_ACTIONS},
    "case-nothing": "Not recorded: no alert of this case is in a state that action applies to.",
    "case-needs-reason": f"Not recorded: dismissing needs a reason: one of {', '.join(DISMISS_REASONS)}",
    "case-needs-note": "Not recorded: dismissing for 'other' needs a note",
    "case-unknown-action": "Not recorded: unknown action.",
    "case-note-too-long": "Not recorded: a note is at most 4,000 characters (the case reference included).",
    "goaml-written": "goAML report written for the case's escalated accounts.",
    "goaml-refused": "goAML report not written: the export refused this case.",
}


def case_message(params) -> str | None:
    """A fixed message, with the counts given as numbers (never text from the query string)."""
    text = CASE_MESSAGES.get(params.get("msg") or "")
    if not text or not params.get("msg", "").startswith("case-") or params.get("msg") in ("case-nothing", "case-note-too-long"):
        return text
    try:
        done, skipped = int(params.get("n") or 0), int(params.get("skipped") or 0)
    except ValueError:
        return text
    return f"{text}: {done} recorded" + (
        f", {skipped} skipped (already decided or not in a state it applies to)" if skipped else ""
    )


def _leads(row: dict, user) -> list[dict]:
    """Up to four accounts to show first: controllers and employers, then the rest by score; others' banks without ids."""
    out = []
    for acc, alert, bank, role in zip(row["lead_accounts"], row["lead_alerts"], row["lead_banks"], row["roles"]):
        out.append({"account": short_account(acc) if acc else None, "alert": alert, "bank": bank, "role": role})
    return out[:4]


def case_routes(review) -> list[Route]:
    """Routes bound to a Review (its session checks, store and templates)."""

    def not_found(user, csrf, ref):
        return review.page("error.html", user, csrf, status=404, message="No such case for you.")

    @login_required
    async def queue(self, request: Request, user, csrf):
        f = q.QueueFilter.from_params(request.query_params)
        if f is None:
            return self.bad_request(user, csrf)
        with self.db() as con:
            rows, total = cq.ranked_cases(con, user, f)
            choices = q.filter_choices(con, user)
            self.accessed(request, user, "view", "case_queue")
        now = datetime.now().astimezone()
        cases = [
            {**r, "leads": _leads(r, user), "age": age(r["opened_at"], now), "label": _label(r["case_id"], r["ref"])}
            for r in rows.to_dicts()
        ]
        pages = max(1, -(-total // cq.CASE_PAGE))
        return self.page("cases.html", user, csrf, rows=cases, total=total, f=f, pages=pages, choices=choices)

    @login_required
    async def queue_csv(self, request: Request, user, csrf):
        f = q.QueueFilter.from_params(request.query_params)
        if f is None:
            return self.bad_request(user, csrf)
        with self.db() as con:
            rows, _ = cq.ranked_cases(con, user, f, limit=None)
            self.accessed(request, user, "export", "case_queue")
        if rows.is_empty():
            return self._csv(pl.DataFrame({"rank": [], "case_id": []}), "cases.csv")
        leads = pl.col("lead_accounts").list.eval(pl.element().str.slice(0, 8).fill_null("(another bank)"))
        out = rows.select(
            "rank",
            pl.col("ref").alias("case_id"),
            pl.col("case_score").round(4).alias("score"),
            "typology",
            "accounts",
            pl.col("banks").list.join(";").alias("banks"),
            pl.concat_str(pl.col("roles").list.join(";")).alias("roles"),
            leads.list.join(";").alias("accounts_leads_first"),
            pl.col("money_eur").round(2).alias("money_inside_eur"),
            "n_open",
            "n_info_requested",
            "n_escalated",
            "n_reported",
            "n_dismissed",
            pl.col("opened_at").dt.date().alias("first_alerted"),
        )
        return self._csv(out, "cases.csv")

    def load(con, user, ref):
        case_id = cq.resolve(con, user, ref)
        if case_id is None:
            return None, None
        return case_id, cq.members(con, user, case_id)

    @login_required
    async def case(self, request: Request, user, csrf):
        ref = request.path_params["ref"]
        with self.db() as con:
            case_id, m = load(con, user, ref)
            if case_id is None:
                return not_found(user, csrf, ref)
            nodes, edges, shared = cq.network(con, user, m)
            weeks = cq.money_over_time(None, con, nodes["account_id"].to_list())
            leads = nodes.filter(pl.col("visible") & pl.col("role").is_in(["controller", "employer", "hub"]))
            proceeds = cq.proceeds(con, leads["account_id"].to_list(), nodes["account_id"].to_list())
            audit = self.audit_rows(con, user, m["alert_id"].to_list())
            self.accessed(request, user, "view", "case", case_id)
        m = m.with_columns(pl.col("case_role").replace_strict(cq.ROLE_ORDER, default=9).alias("rr")).sort(
            "rr", pl.col("score"), descending=[False, True]
        )
        accounts = [
            {
                **r,
                "short": short_account(r["account_id"]) if r["visible"] else None,
                "reason_list": [tidy_amounts(x).replace(case_id, ref) for x in (r["reasons"] or "").split("; ") if x]
                if r["visible"]
                else [],
            }
            for r in m.drop("evidence", "rules").to_dicts()
        ]
        names = {
            r["account_id"]: (short_account(r["account_id"]) if r["visible"] else f"{r['bank_id']} account")
            for r in nodes.to_dicts()
        }
        edge_rows = [{**e, "payer": names[e["src"]], "payee": names[e["dst"]]} for e in edges.to_dicts()]
        visible_alerts = m.filter(pl.col("visible"))
        ctx = dict(
            ref=ref,
            label=_label(case_id, ref),
            typology=m["typology"].mode().first(),
            accounts=accounts,
            banks=sorted(set(m["bank_id"])),
            score=visible_alerts["score"].max(),  # other banks' accounts are shown without their score
            network_svg=case_network_svg(nodes, edges, shared),
            edges=edge_rows,
            shared=[{**s, "members": [names[a] for a in s["accounts"]]} for s in shared.to_dicts()],
            hubs=nodes.filter(pl.col("role") == "hub").height,
            weeks_svg=weekly_bars_svg(weeks, "money between the case's accounts per week"),
            proceeds=_proceeds_view(proceeds, names, nodes),
            audit=audit.to_dicts(),
            dismiss_reasons=DISMISS_REASONS,
            can_decide={a: visible_alerts.filter(pl.col("status").is_in(list(ACTIONS[a][1]))).height for a in CASE_ACTIONS},
            can_export=bool(self.exporter) and visible_alerts.filter(pl.col("status") == "escalated").height > 0,
            message=case_message(request.query_params),
        )
        return self.page("case.html", user, csrf, **ctx)

    @login_required
    async def proceeds_csv(self, request: Request, user, csrf):
        ref = request.path_params["ref"]
        with self.db() as con:
            case_id, m = load(con, user, ref)
            if case_id is None:
                return not_found(user, csrf, ref)
            nodes, _, _ = cq.network(con, user, m)
            leads = nodes.filter(pl.col("visible") & pl.col("role").is_in(["controller", "employer", "hub"]))
            p = cq.proceeds(con, leads["account_id"].to_list(), nodes["account_id"].to_list())
            self.accessed(request, user, "export", "case_proceeds", case_id)
        roles = dict(zip(leads["account_id"], leads["role"]))
        out = p.with_columns(
            pl.lit(ref).alias("case_id"), pl.col("account_id").replace_strict(roles, default=None).alias("role")
        ).select("case_id", "account_id", "role", "week", "flow", "kind", "country", pl.col("amount").round(2), "bookings")
        return self._csv(out, f"case-{ref}-proceeds.csv")

    @post_checked
    async def decide(self, request, user, csrf, form):
        ref = request.path_params["ref"]
        action, reason = form.get("action", ""), form.get("reason") or None
        try:  # as each alert's decision will: control and invisible characters are nothing, identifiers masked
            note = (clean_note(form.get("note")) or "").strip()
        except DispositionError:
            return _back(ref, "case-note-too-long")
        if action not in CASE_ACTIONS:
            return _back(ref, "case-unknown-action")
        if action == "dismiss" and reason not in DISMISS_REASONS:
            return _back(ref, "case-needs-reason")
        if action == "dismiss" and reason == "other" and not note:
            return _back(ref, "case-needs-note")
        with self.db() as con:
            case_id, m = load(con, user, ref)
            if case_id is None:
                return not_found(user, csrf, ref)
            named = self.cw.case_ref(case_id)  # the log names the case as every bank's people may see it, not by its id
            if len(f"case {named}: {note}") > MAX_NOTE:  # checked once here, not refused alert by alert as "skipped"
                return _back(ref, "case-note-too-long")
            todo = m.filter(pl.col("visible") & pl.col("status").is_in(list(ACTIONS[action][1])))["alert_id"].to_list()
            skipped = m.filter(pl.col("visible")).height - len(todo)
            done = 0
            for alert_id in todo:  # one decision and one audit entry per alert, as on the alert page
                try:
                    record_disposition(
                        self.cw, alert_id, action, user.name, reason, f"case {named}" + (f": {note}" if note else "")
                    )
                    done += 1
                except DispositionError:
                    skipped += 1
        if not done:
            return _back(ref, "case-nothing")
        return _back(ref, f"case-{action}", n=done, skipped=skipped)

    @post_checked
    async def goaml(self, request, user, csrf, form):
        ref = request.path_params["ref"]
        with self.db() as con:
            case_id = cq.resolve(con, user, ref)
        if case_id is None:
            return not_found(user, csrf, ref)
        if not self.exporter:
            return self.page("error.html", user, csrf, status=404, message="goAML export is not configured (serve --identities).")
        return _back(ref, "goaml-written" if self.export_goaml(request, user, case=case_id) else "goaml-refused")

    def bind(handler):
        async def endpoint(request: Request):
            return await handler(review, request)

        return endpoint

    return [
        Route("/cases", bind(queue)),
        Route("/cases.csv", bind(queue_csv)),
        Route("/cases/{ref}/proceeds.csv", bind(proceeds_csv)),
        Route("/cases/{ref}/decision", bind(decide), methods=["POST"]),
        Route("/cases/{ref}/goaml", bind(goaml), methods=["POST"]),
        Route("/cases/{ref}", bind(case)),
    ]


def _label(case_id: str, ref: str) -> str:
    return short_id(case_id) if case_id == ref else ref


def _back(ref: str, msg: str, **counts) -> RedirectResponse:
    extra = "".join(f"&{k}={int(v)}" for k, v in counts.items())
    return RedirectResponse(f"/cases/{quote(ref, safe='')}?msg={msg}{extra}", status_code=303)


def _proceeds_view(p: pl.DataFrame, names: dict, nodes: pl.DataFrame) -> list[dict]:
    """Per lead: money in from the case, out by kind (abroad by country), and by month."""
    roles = dict(zip(nodes["account_id"], nodes["role"]))
    out = []
    for (acc,), g in p.group_by("account_id", maintain_order=True):
        g = g.with_columns(pl.col("week").dt.strftime("%Y-%m").alias("month"))
        by_kind = (
            g.filter(pl.col("flow") == "out")
            .with_columns(
                pl.when(pl.col("kind") == "abroad").then(pl.lit("abroad: ") + pl.col("country")).otherwise("kind").alias("where")
            )
            .group_by("kind", "where")
            .agg(pl.col("amount").sum(), pl.col("bookings").sum())
            .with_columns(pl.col("kind").replace_strict({k: i for i, k in enumerate(cq.PROCEEDS_KINDS)}, default=99).alias("o"))
            .sort("o", pl.col("amount"), descending=[False, True])
        )
        months = sorted(g["month"].unique().to_list())
        grid = g.group_by("flow", "kind", "month").agg(pl.col("amount").sum())
        cells = {(r["flow"], r["kind"], r["month"]): r["amount"] for r in grid.to_dicts()}
        kinds = [("in from the case", "from victims or workers")] + [("out", k) for k in cq.PROCEEDS_KINDS]
        table = [
            {"flow": fl, "kind": k, "cells": [cells.get((fl, k, mo)) for mo in months]}
            for fl, k in kinds
            if any((fl, k, mo) in cells for mo in months)
        ]
        inflow = g.filter(pl.col("flow") == "in from the case")
        out.append(
            {
                "account": names.get(acc, short_account(acc)),
                "role": roles.get(acc),
                "money_in": inflow["amount"].sum(),
                "in_bookings": inflow["bookings"].sum(),
                "by_kind": by_kind.to_dicts(),
                "months": months,
                "table": table,
            }
        )
    return out
