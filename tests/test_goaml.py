"""goAML export: valid reports for every typology, the indicator mapping, goAML formats, named refusals, the record."""

import re
from pathlib import Path

import polars as pl
import pytest
from lxml import etree

from casework.dispositions import record_disposition
from casework.goaml import MAPPING, XSD, ExportError, GoamlExporter, indicator_codes, load_mapping
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.snapshot import score_and_publish as score_store
from schemas.settings import load_settings
from synthetic.identities import write_identities
from tests.conftest import generated_store

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "tests" / "goaml_entity.yaml"  # a made-up bank: the example config's entity is refused
EXAMPLE_CONFIG = REPO / "detectors" / "config.example.yaml"
SHARED_XSD = REPO.parent / "shared" / "goaml" / "goAMLSchema-5.0.2.xsd"
TYPOLOGIES = ("sexual_exploitation", "labour_exploitation", "criminal_exploitation", "creditboys", "debt_bondage")


@pytest.fixture(scope="module")
def escalated(tmp_path_factory):
    """A scored synthetic store with the best alert of each typology escalated, and its identities file."""
    root = tmp_path_factory.mktemp("goaml")
    db = generated_store(root)
    res = score_store(db, root / "out", models_dir=root / "m")
    best = res.alerts.sort("rank").unique("typology", keep="first").filter(pl.col("typology").is_in(TYPOLOGIES))
    for a in best["alert_id"].to_list():
        record_disposition(open_casework(db), a, "escalate", "bob")
    ids = write_identities(db, root / "identities.csv")
    return root, db, best, ids


def _force_escalated(db, alert):
    """Back to escalated (an earlier test reported it); decisions live in the casework database."""
    cw = open_casework(db)
    with cw.tx() as c:
        cw.set_status(c, alert, status="escalated")


def _exporter(db, ids):
    return GoamlExporter(db, ids, load_settings(CONFIG).goaml.entity())


def test_the_shipped_schema_is_the_fius(tmp_path):
    if not SHARED_XSD.exists():
        pytest.skip("../shared/goaml is not beside this checkout")
    assert XSD.read_bytes() == SHARED_XSD.read_bytes()


def test_every_mapped_code_is_in_the_schema():
    xsd = etree.parse(str(XSD))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    allowed = {
        t: {e.get("value") for e in xsd.findall(f".//xs:simpleType[@name='{t}']//xs:enumeration", ns)}
        for t in ("report_indicator_type", "report_type", "conduction_type", "funds_type", "submission_type")
    }
    m = load_mapping(MAPPING)
    codes = set(m["always"]) | {c for cs in m["indicators"].values() for c in cs}
    assert codes and codes <= allowed["report_indicator_type"], codes - allowed["report_indicator_type"]
    assert m["report_code"] in allowed["report_type"] and m["submission_code"] in allowed["submission_type"]
    assert {c["transmode"] for c in m["channels"].values()} <= allowed["conduction_type"]
    assert {c["funds"] for c in m["channels"].values()} <= allowed["funds_type"]


def test_every_typology_has_an_alert_to_report(escalated):
    _, _, best, _ = escalated
    assert set(best["typology"]) == set(TYPOLOGIES)


def test_reports_for_each_typology_validate_and_are_recorded(escalated, tmp_path):
    root, db, best, ids = escalated
    assert best["typology"].n_unique() >= 3  # every typology the detectors alert on (all five: test above)
    written, refused = _exporter(db, ids).export(tmp_path / "r", "xq-exporter", escalated=True)  # xq exports what bob escalated
    assert not refused and len(written) == best.height
    schema = etree.XMLSchema(etree.parse(str(SHARED_XSD if SHARED_XSD.exists() else XSD)))
    for path in written:
        doc = etree.parse(str(path))
        schema.assertValid(doc)
        assert path.stat().st_mode & 0o077 == 0  # identities inside: owner only
        alert = doc.findtext("entity_reference")
        row = best.filter(pl.col("alert_id") == alert).row(0, named=True)
        # the indicator mapping is applied: exactly the mapped codes of the rules that fired
        assert [i.text for i in doc.iter("indicator")] == indicator_codes(row["rules"], load_mapping())
        # goAML formats: amounts with two decimals, local date-times without offset, EUR as local currency
        assert all(re.fullmatch(r"\d+\.\d{2}", a.text) for a in doc.iter("amount_local"))
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", d.text) for d in doc.iter("date_transaction"))
        assert doc.findtext("currency_code_local") == "EUR"
        # the subject's own bookings among the evidence (a pattern's evidence also names other accounts' transfers)
        with store.connect(db, read_only=True) as con:
            own = con.execute(
                "SELECT count(*) FROM transactions WHERE list_contains(?, txn_id) AND account_id = ?",
                [row["evidence"], row["account_id"]],
            ).fetchone()[0]
        assert own and len(doc.findall("transaction")) == min(own, 100)
        assert "human trafficking" in doc.findtext("reason") and row["reasons"][:40] in doc.findtext("reason")
        assert "escalated by bob" in doc.findtext("reason") and "xq-exporter" not in doc.findtext(
            "reason"
        )  # who decided, from the audit
    cw = open_casework(db)
    reported = cw.statuses().filter(pl.col("status") == "reported")
    rec = (reported.height, reported["report_file"].n_unique())
    log = cw.audit_rows().filter(pl.col("action") == "report_goaml").height
    assert rec == (best.height, best.height) and log == best.height


def test_one_report_maps_the_amounts_and_parties_of_a_transaction(escalated, tmp_path):
    root, db, best, ids = escalated
    con = store.connect(db)
    try:
        alert = best.filter(pl.col("typology") == "labour_exploitation")["alert_id"][0]
        _force_escalated(db, alert)
        first = con.execute(
            """SELECT t.txn_id, t.amount_eur, t.direction FROM transactions t
                               WHERE t.txn_id = (SELECT evidence[1] FROM alerts WHERE alert_id = ? LIMIT 1)""",
            [alert],
        ).fetchone()
    finally:
        con.close()
    written, _ = _exporter(db, ids).export(tmp_path / "r", "bob", alert=alert)
    doc = etree.parse(str(written[0]))
    tx = next(t for t in doc.iter("transaction") if t.findtext("transactionnumber") == first[0])
    assert tx.findtext("amount_local") == f"{float(first[1]):.2f}"
    mine = "t_from_my_client" if first[2] == "debit" else "t_to_my_client"
    assert tx.find(f"{mine}/*/account") is not None and tx.find(f"{mine}/*/account").text.startswith("NL00SYNT")


def test_a_missing_identity_field_names_it_and_writes_nothing(escalated, tmp_path, capsys):
    root, db, best, ids = escalated
    con = store.connect(db)
    try:
        alert = best["alert_id"][0]
        _force_escalated(db, alert)
        holder = con.execute("SELECT customer_id FROM accounts WHERE account_id = ?", [best["account_id"][0]]).fetchone()[0]
    finally:
        con.close()
    table = pl.read_csv(ids, infer_schema_length=0)
    broken = tmp_path / "ids.csv"
    table.with_columns(
        pl.when(pl.col("pseudonymous_id") == holder).then(None).otherwise(pl.col("passport_number")).alias("passport_number")
    ).write_csv(broken)
    code = main(
        [
            "export-goaml",
            "--db",
            str(db),
            "--alert",
            alert,
            "--identities",
            str(broken),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(CONFIG),
            "--user",
            "bob",
        ]
    )
    assert code == 1
    assert f"alert {alert}: holder {holder[:8]} lacks passport_number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_missing_field_message_lists_fields_per_alert(escalated, tmp_path):
    root, db, best, ids = escalated
    con = store.connect(db)
    try:
        alert = best["alert_id"][0]
        _force_escalated(db, alert)
    finally:
        con.close()
    table = pl.read_csv(ids, infer_schema_length=0).filter(pl.col("pseudonymous_id") != best["account_id"][0])
    table.write_csv(tmp_path / "ids.csv")
    written, refused = _exporter(db, tmp_path / "ids.csv").export(tmp_path / "r", "bob", alert=alert)
    assert written == [] and len(refused) == 1
    assert refused[0].startswith(f"alert {alert}: account {best['account_id'][0][:8]} lacks account, account_name, balance")


def test_only_escalated_alerts_are_reported(escalated, tmp_path):
    root, db, best, ids = escalated
    other = open_casework(db).statuses().filter(pl.col("status") == "open")["alert_id"][0]
    code = main(
        [
            "export-goaml",
            "--db",
            str(db),
            "--alert",
            other,
            "--identities",
            str(ids),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(CONFIG),
        ]
    )
    assert code == 2 and not (tmp_path / "r").exists()


def test_trafficking_indicators_map_to_no_drug_code_and_say_where_each_comes_from():
    m = load_mapping(MAPPING)
    drugs = {i: cs for i, cs in m["indicators"].items() for c in cs if c.startswith("DRG")}
    assert not drugs, drugs
    lines = [ln for ln in MAPPING.read_text().splitlines() if re.match(r"\s+[A-Z]{2}-\d\d:", ln)]
    assert len(lines) == len(m["indicators"]) and all("<-" in ln for ln in lines)  # each code with its source description


def test_no_or_the_example_reporting_entity_is_refused_in_one_line(escalated, tmp_path, capsys):
    from casework.goaml import ExportError

    root, db, best, ids = escalated
    with pytest.raises(ExportError, match="example reporting entity"):
        GoamlExporter(db, ids, load_settings(EXAMPLE_CONFIG).goaml.entity())
    with pytest.raises(ExportError, match="needs the bank's reporting entity: set goaml: rentity_id"):
        GoamlExporter(db, ids, {})
    argv = ["export-goaml", "--db", str(db), "--escalated", "--identities", str(ids), "--out", str(tmp_path / "r")]
    assert main(argv + ["--config", str(EXAMPLE_CONFIG)]) == 2
    assert main(argv) == 2  # without --config the settings are the example's: refused the same way, never written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("example reporting entity (Voorbeeldbank N.V., id 1234)" in e for e in err)
    assert not (tmp_path / "r").exists()


def test_a_case_is_one_report_with_its_escalated_accounts_and_a_bank_reports_its_own(escalated, tmp_path):
    root, db, best, ids = escalated
    con = store.connect(db)
    cw = open_casework(db)
    try:
        con.register("decided", cw.statuses().to_arrow())  # decisions live in the casework database
        case = con.execute(
            """WITH l AS (SELECT * FROM alerts QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY created_at DESC) = 1)
               SELECT l.case_id FROM l JOIN decided s USING (alert_id) GROUP BY 1
               HAVING count(DISTINCT l.bank_id) = 2 AND bool_and(s.status = 'open') ORDER BY count(*) DESC LIMIT 1"""
        ).fetchall()[0][0]
        members = con.execute("SELECT alert_id, bank_id FROM alerts WHERE case_id = ? GROUP BY ALL ORDER BY 1", [case]).fetchall()
        for alert_id, _ in members:
            record_disposition(cw, alert_id, "escalate", "carol")
    finally:
        con.close()
    written, refused = _exporter(db, ids).export(tmp_path / "one", "eve", case=case, bank="BANK_A")
    assert not refused and len(written) == 1
    own = {a for a, b in members if b == "BANK_A"}
    doc = etree.parse(str(written[0]))
    assert {t.findtext("internal_ref_number") for t in doc.iter("transaction")} == own  # only the bank's own customers
    others = {a for a, b in members if b == "BANK_B"}
    written, refused = _exporter(db, ids).export(tmp_path / "all", "eve", case=case)
    doc = etree.parse(str(written[0]))
    assert len(written) == 1 and {t.findtext("internal_ref_number") for t in doc.iter("transaction")} == others
    assert doc.findtext("entity_reference") == (case if len(others) > 1 else sorted(others)[0])
    assert "escalated by carol" in doc.findtext("reason")
    # every escalated alert of the case is reported now: a third export says so, not only "no escalated alert"
    with pytest.raises(
        ExportError, match=f"case {case} has no escalated alert left to report: {len(members)} of its alerts are already reported"
    ):
        _exporter(db, ids).export(tmp_path / "again", "eve", case=case)
