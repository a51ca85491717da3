"""Privacy on the review site: every view and export in the access log, the auditor role, likely victims protected
on the page, in CSV exports and in goAML reports."""

import hashlib
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from lxml import etree
from starlette.testclient import TestClient

from casework.goaml import GoamlExporter
from casework.review.app import Review
from casework.review.auth import hash_password, load_users
from pipelines import snapshot
from pipelines.casework_db import open_casework
from pipelines.cli import main
from tests.test_review import GOAML_ENTITY, alert_of, csrf_of, login, users_file
from tests.test_review import site as review_site  # noqa: F401  (the module-scoped scored store)

DORA = "dora-audits-everything"


@pytest.fixture(scope="module")
def site(review_site):  # noqa: F811
    root, db, res, users, ids = review_site
    f = users_file(root / "users-privacy.yaml")
    data = yaml.safe_load(f.read_text())
    data["users"]["dora"] = {"password": hash_password(DORA), "role": "auditor"}
    f.write_text(yaml.safe_dump(data))
    return root, db, res, load_users(f), ids


def client(site, exporter=False):
    root, db, res, users, ids = site
    ex = GoamlExporter(db, ids, GOAML_ENTITY) if exporter else None
    return TestClient(Review(db, users, ex, root / "goaml-privacy", secret=b"k" * 32).app())


def _access(db, user):
    """The user's entries in the access log (the casework database: the page never writes the store), oldest first."""
    log = open_casework(db).access_entries(limit=100_000).filter(pl.col("user_name") == user).sort("seq")
    return log.select("action", "object_kind", "object_id", "bank_id", "address", "reason").rows()


def test_every_view_and_export_of_an_alert_is_in_the_access_log(site):
    root, db, res, users, ids = site
    c = client(site)
    login(c, "bert")
    aid = alert_of(res, "ctrl")  # bank B's controller
    store_before = hashlib.sha256(Path(db).read_bytes()).hexdigest()
    c.get("/queue?status=all")
    c.get(f"/alerts/{aid}")
    c.get(f"/alerts/{aid}.csv")
    c.get("/queue.csv?status=all")
    c.get(f"/alerts/{alert_of(res, 'v1')}")  # another bank's alert: 404, nothing shown, nothing logged
    got = _access(db, "bert")
    assert [(a, k) for a, k, *_ in got] == [("view", "queue"), ("view", "alert"), ("export", "alert"), ("export", "queue")]
    assert got[1][2:5] == (aid, "BANK_B", "testclient") and got[0][3] == "BANK_B"
    assert hashlib.sha256(Path(db).read_bytes()).hexdigest() == store_before  # the log went to the casework database


def test_the_auditor_sees_the_logs_and_nothing_else(site):
    root, db, res, users, ids = site
    ann = client(site)
    login(ann, "ann")
    assert ann.get("/access").status_code == 404  # investigators do not see who looked at what
    aid = alert_of(res, "v1")
    ann.get(f"/alerts/{aid}")

    c = client(site)
    assert login(c, "dora", DORA).status_code == 303
    r = c.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    for path in (f"/alerts/{aid}", f"/alerts/{aid}.csv", "/queue.csv", "/fiu"):
        assert c.get(path).status_code == 404, path
    page = c.get("/audit").text
    assert c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(page), "action": "escalate"}).status_code == 404
    access = c.get("/access")
    assert access.status_code == 200 and re.search(
        rf"<td>ann</td><td>investigator</td>\s*<td>view</td><td>alert</td><td>{aid}", access.text
    )
    assert 'href="/alerts/' not in page and 'href="/queue"' not in page  # no way into the casework
    assert [(a, k) for a, k, *_ in _access(db, "dora")] == [("view", "audit_log"), ("view", "access_log")]


def test_a_likely_victims_counterparties_and_texts_show_only_after_a_logged_reason(site):
    root, db, res, users, ids = site
    a = res.alerts.filter(pl.col("account_id") == "z").row(0, named=True)
    assert a["case_role"] == "victim"
    c = client(site)
    login(c, "fiona")
    page = c.get(f"/alerts/{a['alert_id']}").text
    timeline = page.split('id="timeline"')[1]
    assert 'id="do-reveal"' in page and "<em>protected</em>" in timeline and "[masked]" not in timeline
    assert "<td>" not in page.split('id="counterparties"')[1].split("</table>")[0]  # no counterparty listed
    assert "<td>" not in page.split('id="network"')[1].split("</table>")[0]  # no linked account either
    assert 'class="evidence"' in page and a["reasons"].split("; ")[0][:30] in page  # the evidence to judge the case stays

    r = c.post(f"/alerts/{a['alert_id']}/reveal", data={"csrf": csrf_of(page), "reason": "why"}, follow_redirects=True)
    assert "give a reason of at least 10 characters" in r.text and "<em>protected</em>" in r.text
    r = c.post(
        f"/alerts/{a['alert_id']}/reveal",
        data={"csrf": csrf_of(page), "reason": "FIU asked   who pays the <b>collector</b>"},
        follow_redirects=True,
    )
    assert "your reason is in the access log" in r.text and "[masked]" in r.text and "<em>protected</em>" not in r.text
    reveals = [e for e in _access(db, "fiona") if e[0] == "reveal"]
    assert reveals == [("reveal", "alert", a["alert_id"], a["bank_id"], "testclient", "FIU asked who pays the <b>collector</b>")]
    assert "&lt;b&gt;collector" not in r.text  # the reason is logged, not echoed
    other = client(site)  # a reveal is personal: another analyst still sees the protected page
    login(other, "fiona")
    csv = other.get(f"/alerts/{a['alert_id']}.csv").text  # and an export never carries the protected columns
    assert "description" not in csv.splitlines()[0] and csv.splitlines()[1].endswith(",victim")


def test_a_victims_goaml_report_states_the_role_and_carries_only_what_it_needs(site, tmp_path):
    root, db, res, users, ids = site
    c = client(site, exporter=True)
    login(c, "ann")
    aid = alert_of(res, "v1")
    evidence = res.alerts.filter(pl.col("alert_id") == aid)["evidence"][0].to_list()
    con = duckdb.connect(str(db))  # what a victim writes on a payment: never in the report
    con.execute(
        "UPDATE transactions SET description = 'rent for the room to the boss' WHERE list_contains(?, txn_id)", [evidence]
    )
    con.close()
    snapshot.refresh(db)  # the page and the export read the published snapshot: publish the changed bookings
    page = c.get(f"/alerts/{aid}").text
    page = c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(page), "action": "escalate"}).text
    assert "goAML report written" in c.post(f"/alerts/{aid}/goaml", data={"csrf": csrf_of(page)}).text
    xml = etree.parse(str(root / "goaml-privacy" / f"goaml-{aid}.xml"))
    assert "likely victim, not as a perpetrator" in xml.findtext("reason")
    con = duckdb.connect(str(db), read_only=True)
    try:
        texts, persons = con.execute(
            "SELECT list(DISTINCT description) FILTER (description IS NOT NULL), count(*) FILTER (counterparty_type = 'person') "
            "FROM transactions WHERE list_contains(?, txn_id)",
            [evidence],
        ).fetchall()[0]
    finally:
        con.close()
    body = etree.tostring(xml, encoding="unicode")
    assert texts and not [t for t in texts if t in body]  # no payment description of the victim's bookings
    assert persons and "private person" in body  # the private persons paying v1 are not named
    assert [e[:3] for e in _access(db, "ann") if e[0] == "export"] == [("export", "report", aid)]
    assert main(["verify-audit", "--db", str(db)]) == 0
