"""`thb-signals disseminate`: reports declared suspicious, packaged per subject network for the investigative services.

One package per network (reports, transactions, parties, themes, decisions, who and when) as JSON and a readable HTML
summary; every disseminated report is recorded in `fiu_disseminations`, so a second run sends nothing twice. Parties
stay pseudonymous unless an identities file is given, and even then only names, birth date and nationality are added:
never an account number, phone or e-mail. A network with counterparties in a route country also gets a request
summary for that country's FIU.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import duckdb
import polars as pl

from casework.fiu.screen import link_subjects
from casework.identities import IdentitiesError, read_identities
from detectors.scoring import mask_identifiers
from pipelines import store
from pipelines.casework_db import open_casework

ROUTE_COUNTRIES = {
    "NG": "Nigeria",
    "RO": "Romania",
    "BG": "Bulgaria",
    "HU": "Hungary",
    "CN": "China",
    "VN": "Viet Nam",
    "UA": "Ukraine",
    "MD": "Moldova",
    "AL": "Albania",
    "TH": "Thailand",
    "PH": "Philippines",
    "GH": "Ghana",
    "UG": "Uganda",
    "BR": "Brazil",
    "CO": "Colombia",
    "VE": "Venezuela",
    "PL": "Poland",
    "SK": "Slovakia",
}
IDENTITY_FIELDS = (
    "first_name",
    "last_name",
    "account_name",
    "birthdate",
    "gender",
    "nationality1",
)  # never numbers or contact details
QUESTIONS = [
    "Are the receivers (ids above) known to you, and who holds or controls their accounts?",
    "Which other senders, in your country or elsewhere, paid these receivers in the period?",
    "Where was the money collected or withdrawn (place, office, agent), and by whom?",
    "Are the receivers or senders known in relation to human trafficking, smuggling or fraud?",
    "Do you hold reports on the same persons, phone numbers or addresses that you can share?",
]


class DisseminationError(ValueError):
    pass


def _read_identities(path: str | Path) -> pl.DataFrame:
    """The identity fields a package names, read as goAML export reads them (casework/identities.py)."""
    try:
        df = read_identities(path)
    except IdentitiesError as e:
        raise DisseminationError(str(e)) from None
    return df.select("pseudonymous_id", *[c for c in IDENTITY_FIELDS if c in df.columns])


def pending(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Reports whose latest decision is 'suspicious' and that were never disseminated."""
    return con.sql("""
        SELECT d.report_id, d.typology, d.user_name, d.decided_at, d.note FROM fiu_decisions d
        WHERE d.report_id NOT IN (SELECT report_id FROM fiu_disseminations)
        QUALIFY row_number() OVER (PARTITION BY d.report_id ORDER BY d.decided_at DESC, d.event_id) = 1 AND d.decision = 'suspicious'
        ORDER BY d.report_id""").pl()


def _html(pkg: dict) -> str:
    def table(rows: list[dict], cols: list[str]) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    total = sum(t["amount_eur"] for t in pkg["transactions"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(pkg["package_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:90%}}</style>
</head><body>
<h1>Suspicious transactions: {escape(pkg["package_id"])}</h1>
<p>Network {escape(pkg["network_id"])}: {len(pkg["reports"])} report(s) declared suspicious, {len(pkg["parties"])} parties,
EUR {total:,.2f}. Typologies: {escape(", ".join(pkg["typologies"]) or "-")}. Themes: {
        escape(", ".join(pkg["themes"]) or "-")
    }.</p>
<p>Disseminated by {escape(pkg["disseminated_by"])} on {escape(pkg["disseminated_at"])}.
Parties are {"identified from the identities file" if pkg["identified"] else "pseudonymous (keyed hashes)"}.</p>
<h2>Decisions</h2>{table(pkg["decisions"], ["report_id", "decision", "typology", "user_name", "decided_at", "note"])}
<h2>Parties</h2>{table(pkg["parties"], ["party_id", "role", "reporting_entities", *IDENTITY_FIELDS])}
<h2>Transactions</h2>{
        table(
            pkg["transactions"],
            [
                "report_id",
                "reporting_entity",
                "booked_at",
                "direction",
                "amount_eur",
                "channel",
                "account_id",
                "counterparty_id",
                "counterparty_country",
                "location_city",
            ],
        )
    }
{"".join(f"<p>Request to the FIU of {escape(r['country_name'])}: {escape(r['file'])}</p>" for r in pkg["route_requests"])}
</body></html>
"""


def _request(pkg: dict, cc: str, txns: list[dict]) -> str:
    lines = [
        f"# Request for information to the FIU of {ROUTE_COUNTRIES[cc]} ({cc})",
        "",
        f"From FIU-Nederland, package {pkg['package_id']} ({pkg['disseminated_at']}). Typologies: {', '.join(pkg['typologies'])}.",
        "",
        "## Subjects",
        "",
    ]
    receivers = sorted({t["counterparty_id"] for t in txns if t["counterparty_id"]})
    senders = sorted({t["account_id"] for t in txns})
    lines += [f"- receiver in {cc}: {r}" for r in receivers] + [f"- sender in NL: {s}" for s in senders]
    lines += ["", "## Transactions", "", "| date | sender | receiver | EUR | via |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {t['booked_at'][:10]} | {t['account_id'][:12]} | {(t['counterparty_id'] or '')[:12]} | {t['amount_eur']:,.2f} | "
        f"{t['reporting_entity']} |"
        for t in txns
    ]
    lines += ["", "## Questions", ""] + [f"{i}. {q}" for i, q in enumerate(QUESTIONS, 1)] + [""]
    return "\n".join(lines)


def disseminate(
    db_path: str | Path,
    out: str | Path,
    user: str,
    identities: str | Path | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[dict]:
    """Write one package per network for the reports pending dissemination; returns what was written."""
    ids = _read_identities(identities) if identities else None
    own = con is None
    con = con or store.connect(db_path)
    try:
        if db_path:  # FIU decisions live in the casework database
            con.register("fiu_decisions", open_casework(db_path, create=False).fiu_decisions().to_arrow())
        todo = pending(con)
        if todo.is_empty():
            return []
        link_subjects(con, "fiu_reports")
        con.register("todo_df", todo)
        txns = con.sql("""SELECT n.network_id, r.report_id, r.reporting_entity, r.indicator_code, r.txn_id,
                                 strftime(r.booked_at, '%Y-%m-%dT%H:%M:%SZ') AS booked_at, r.direction, r.amount_eur, r.channel,
                                 r.account_id, r.counterparty_id, r.counterparty_type, r.counterparty_name, r.counterparty_country,
                                 r.location_city, r.description
                          FROM fiu_reports r JOIN todo_df USING (report_id) JOIN subject_network n ON n.subject_id = r.account_id
                          ORDER BY n.network_id, r.booked_at, r.report_id""").pl()
        decisions = con.sql("""SELECT report_id, decision, typology, user_name, strftime(decided_at, '%Y-%m-%dT%H:%M:%SZ') AS decided_at, note
                               FROM fiu_decisions WHERE report_id IN (SELECT report_id FROM todo_df) ORDER BY decided_at""").pl()
        # notes are stored masked since decisions mask them; one written before that is masked on its way out
        decisions = decisions.with_columns(pl.col("note").map_elements(mask_identifiers, return_dtype=pl.Utf8))
        themes = con.sql("""SELECT DISTINCT report_id, theme_id FROM fiu_theme_hits
                            WHERE report_id IN (SELECT report_id FROM todo_df)""").pl()
        con.unregister("todo_df")
        now = datetime.now(timezone.utc)
        written = []
        out = Path(out)
        for (net,), t in txns.group_by(["network_id"], maintain_order=True):
            rep_ids = t["report_id"].unique().sort().to_list()
            package_id = f"PKG-{now:%Y%m%d%H%M%S}-{net[2:]}"
            folder = out / package_id
            folder.mkdir(parents=True, exist_ok=True)
            parties = (
                pl.concat(
                    [
                        t.select(
                            pl.col("account_id").alias("party_id"), pl.lit("reported subject").alias("role"), "reporting_entity"
                        ),
                        t.filter(pl.col("counterparty_type") == "person").select(
                            pl.col("counterparty_id").alias("party_id"), pl.lit("counterparty").alias("role"), "reporting_entity"
                        ),
                    ]
                )
                .group_by("party_id", maintain_order=True)
                .agg(pl.col("role").first(), pl.col("reporting_entity").unique().sort().alias("reporting_entities"))
            )
            if ids is not None:
                parties = parties.join(ids, left_on="party_id", right_on="pseudonymous_id", how="left", maintain_order="left")
            dec = decisions.filter(pl.col("report_id").is_in(rep_ids))
            pkg = {
                "package_id": package_id,
                "network_id": net,
                "disseminated_by": user,
                "disseminated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "identified": ids is not None,
                "reports": [
                    {"report_id": r, "reporting_entity": e, "indicator_code": c}
                    for r, e, c in t.select("report_id", "reporting_entity", "indicator_code")
                    .unique("report_id", maintain_order=True)
                    .iter_rows()
                ],
                "typologies": sorted({x for x in dec["typology"].to_list() if x}),
                "themes": sorted(set(themes.filter(pl.col("report_id").is_in(rep_ids))["theme_id"].to_list())),
                "decisions": dec.to_dicts(),
                "parties": parties.to_dicts(),
                "transactions": t.drop("network_id").to_dicts(),
                "route_requests": [],
            }
            for cc in sorted({c for c in t["counterparty_country"].drop_nulls().to_list() if c in ROUTE_COUNTRIES}):
                name = f"request_FIU_{cc}.md"
                (folder / name).write_text(
                    _request(pkg, cc, t.filter(pl.col("counterparty_country") == cc).to_dicts()), encoding="utf-8"
                )
                pkg["route_requests"].append({"country": cc, "country_name": ROUTE_COUNTRIES[cc], "file": name})
            (folder / "package.json").write_text(json.dumps(pkg, indent=2, default=str) + "\n", encoding="utf-8")
            (folder / "summary.html").write_text(_html(pkg), encoding="utf-8")
            con.executemany(
                "INSERT INTO fiu_disseminations VALUES (?, ?, ?, ?, ?, ?)",
                [[package_id, net, r, user, now, str(folder)] for r in rep_ids],
            )
            written.append(
                {
                    "package_id": package_id,
                    "network_id": net,
                    "reports": len(rep_ids),
                    "folder": str(folder),
                    "route_requests": [r["country"] for r in pkg["route_requests"]],
                }
            )
        from casework.access_log import log_access
        from casework.dispositions import audit

        for w in written:  # the logs are the casework database's (a scratch connection without a store has none)
            if db_path:
                cw = open_casework(db_path)
                audit(cw, user, "fiu_disseminate", note=w["folder"], details=w)
                log_access(cw, user, "analyst", "export", "dissemination", w["package_id"], reason=w["folder"])
        return written
    finally:
        if own:
            con.close()
