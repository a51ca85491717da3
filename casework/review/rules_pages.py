"""The rules page of the review site: per rule, over a chosen period, how often it fired and what investigators did
with the alerts it drove (casework/rule_stats.py). Users bound to a bank see that bank's figures only, through the
same scope function as the queue."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.routing import Route

from casework.review.queries import _scope
from casework.review.web import login_required
from casework.rule_stats import rule_stats


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def rules_routes(review) -> list[Route]:
    """Routes bound to a Review (its session checks and templates)."""

    @login_required
    async def rules(self, request: Request, user, csrf):
        try:
            since, until = _day(request.query_params.get("since")), _day(request.query_params.get("until"))
        except ValueError:
            return self.page("error.html", user, csrf, status=400, message="Dates are YYYY-MM-DD.")
        banks = _scope(user)[1] or None  # [] for a user who sees every bank, else [the user's bank]
        with self.db() as con:
            stats = rule_stats(con, self.cw, since, until, banks)
        return self.page("rules.html", user, csrf, stats=stats, since=since, until=until)

    async def endpoint(request: Request):
        return await rules(review, request)

    return [Route("/rules", endpoint)]
