"""Request plumbing the review site's pages share: the session and CSRF checks around handlers, and the fixed
messages shown after a redirect (never text from the query string). Kept apart so that page modules (app.py,
fiu_pages.py) import it and not each other."""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse

from casework.dispositions import ACTIONS, DISMISS_REASONS, FIU_DECISIONS
from casework.review.auth import AUDITOR_PATHS

# messages shown after a redirect come from this fixed set, never from the query string's text
MESSAGES = {
    **{f"recorded-{k}": f"Recorded: {k}" for k in ACTIONS},
    **{f"fiu-recorded-{k}": f"Recorded: {k}" for k in FIU_DECISIONS},
    "unknown-action": "Not recorded: unknown action.",
    "wrong-state": "Not recorded: that action does not apply to this alert now.",
    "needs-reason": f"Not recorded: dismissing needs a reason: one of {', '.join(DISMISS_REASONS)}",
    "needs-note": "Not recorded: dismissing for 'other' needs a note",
    "needs-typology": "Not recorded: declaring a report suspicious needs a typology",
    "not-recorded": "Not recorded: the decision was refused.",
    "note-too-long": "Not recorded: a note is at most 4,000 characters.",
    "goaml-written": "goAML report written.",
    "goaml-refused": "goAML report not written: the export refused this alert.",
    "revealed": "Shown for the next hour; your reason is in the access log.",
    "needs-reveal-reason": "Not shown: give a reason of at least 10 characters (it is logged).",
}
REFUSALS = (
    ("unknown action", "unknown-action"),
    ("unknown decision", "unknown-action"),
    ("dismissing needs a reason", "needs-reason"),
    ("dismissing for 'other'", "needs-note"),
    ("declaring a report suspicious", "needs-typology"),
    ("a note is at most", "note-too-long"),
    ("alert ", "wrong-state"),
)


def refusal_code(e: Exception) -> str:
    return next((code for start, code in REFUSALS if str(e).startswith(start)), "not-recorded")


def message(code: str | None) -> str | None:
    return MESSAGES.get(code or "")


def auditor_refused(review, request: Request, user, csrf):
    """Auditors see the logs and nothing else: the queue sends them to the audit log, any other page is a 404."""
    if request.url.path in ("/", "/queue", "/cases"):
        return RedirectResponse("/audit", status_code=303)
    return review.page("error.html", user, csrf, status=404, message="No such page for you.")


def _drive(coro):
    """Run a handler coroutine that never waits on anything (its work is DuckDB and SQL calls) to its end, here."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a page handler awaited something; it must do its waiting before the handler")


async def off_loop(handler, *args):
    """The handler's blocking reads and writes in the thread pool, so one slow page never holds up the others."""
    return await run_in_threadpool(lambda: _drive(handler(*args)))


def login_required(handler):
    """GET handlers: a valid session, else the login page (coming back here after)."""

    async def wrapped(self, request: Request):
        session = self.who(request)
        if session is None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        if session[0].is_auditor and request.url.path not in AUDITOR_PATHS:
            return auditor_refused(self, request, *session)
        return await off_loop(handler, self, request, *session)

    return wrapped


def post_checked(handler):
    """POST handlers: login and a CSRF token that matches the session's."""

    async def wrapped(self, request: Request):
        session = self.who(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        user, csrf = session
        if user.is_auditor and request.url.path not in AUDITOR_PATHS:
            return auditor_refused(self, request, user, csrf)
        form = await self.form(request)
        if form is None:
            return self.page("error.html", user, csrf, status=413, message="The form was too large.")
        if form.get("csrf") != csrf:
            return self.page(
                "error.html",
                user,
                csrf,
                status=403,
                message="The form was stale or forged (CSRF check failed). Reload the page and try again.",
            )
        return await off_loop(handler, self, request, user, csrf, form)

    return wrapped
