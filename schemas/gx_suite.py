"""Great Expectations suites generated from `schemas.contract`.

GX 1.x validates pandas frames only, so the suite runs on a bounded sample (the first N rows of
each staged file); DuckDB SQL checks every row (`pipelines.validation`). Both are compiled from
the same `Check` list, and tests assert they agree on which checks fail.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # GX's metric progress bars

from schemas import contract  # noqa: E402
from schemas.checks import check_type, quote  # noqa: E402
from schemas.contract import Check  # noqa: E402


def _gx():
    import great_expectations as gx  # imported late: ~3 s

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


def expectation(check: Check, context: dict) -> object:
    """The GX expectation that says the same as `check` (defined beside its SQL in `schemas.checks`)."""
    return check_type(check).expectation(check, _gx().expectations, context)


def build_suite(file: str, fiu: bool, context: dict) -> object:
    gx = _gx()
    suite = gx.ExpectationSuite(name=f"contract-v{contract.CONTRACT_VERSION}-{file}")
    for c in contract.columns(file, fiu):
        if c.required:
            suite.add_expectation(
                gx.expectations.ExpectColumnToExist(column=c.name, meta={"check_id": f"{file}.{c.name}.present"})
            )
    for check in contract.checks(
        file, fiu=fiu, has_manifest=context.get("bank_id") is not None, has_accounts=context.get("accounts") is not None
    ):
        if check.kind == "in_period" and not context.get("period"):
            continue
        suite.add_expectation(expectation(check, context))
    return suite


def validate_sample(con, v, rows: int) -> list[dict]:
    """Run the generated suites on the first `rows` rows of each staged file."""
    gx = _gx()
    sub = v.submission
    context: dict = {"bank_id": sub.bank_id}
    if sub.period:
        from datetime import datetime, time
        from zoneinfo import ZoneInfo

        s, e = sub.period
        tz = ZoneInfo(contract.PERIOD_TZ)
        context["period"] = (datetime.combine(s, time.min, tz), datetime.combine(e, time.max, tz))
    if "accounts" in sub.files:
        context["accounts"] = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT CAST(bank_id AS VARCHAR) || '|' || CAST(account_id AS VARCHAR) FROM stg_accounts "
                "WHERE __row NOT IN (SELECT row FROM failures WHERE file = 'accounts')"
            ).fetchall()
        ]
    ctx = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("sample")
    out: list[dict] = []
    for name in sub.files:
        cols = contract.columns(name, sub.fiu)
        select = [f"CAST({quote(c.name)} AS VARCHAR) AS {quote(c.name)}" for c in cols]
        for check in contract.checks(name, fiu=sub.fiu, has_manifest=True, has_accounts=True):
            select += [x for x in check_type(check).sample_columns(check) if x not in select]
        frame = con.execute(f"SELECT {', '.join(select)} FROM stg_{name} ORDER BY __row LIMIT ?", [int(rows)]).df()
        if "booked_at__value" in frame:
            frame["booked_at__value"] = frame["booked_at__value"].dt.tz_convert("UTC")
        suite = ctx.suites.add(build_suite(name, sub.fiu, context))
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe(name)
            .get_batch(batch_parameters={"dataframe": frame})
        )
        result = batch.validate(suite, result_format="SUMMARY")
        for r in result.results:
            out.append(
                {
                    "file": name,
                    "check_id": r.expectation_config.meta.get("check_id"),
                    "expectation": r.expectation_config.type,
                    "success": bool(r.success),
                    "unexpected_count": int(r.result.get("unexpected_count") or 0),
                    "sample_rows": len(frame),
                }
            )
    return out
