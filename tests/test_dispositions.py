"""Investigator decisions: state changes with their audit entries, dismissals that stick, escalations that propagate."""

import polars as pl
import pytest

from casework.dispositions import DispositionError, mark_reported, record_disposition
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.snapshot import score_and_publish as score_store
from tests.book import Book
from tests.test_network import _ring


def _status(db, alert_id):
    """Decisions live in the casework database beside the store."""
    return open_casework(db).statuses().filter(pl.col("alert_id") == alert_id)["status"][0]


def _alert_of(res, account):
    return res.alerts.filter(pl.col("account_id") == account)["alert_id"][0]


@pytest.fixture
def ring(tmp_path):
    b = Book()
    _ring(b)
    b.account("friend")  # pays the controller, nothing else suspicious of its own
    b.transfer("friend", "ctrl", 30, 14, 700)
    b.tx("friend", 31, 12, "debit", 40, "card", cp="m-ah", cptype="business", name="Albert Heijn", mcc="5411", city="Utrecht")
    db = b.write(tmp_path / "s.duckdb")
    return tmp_path, db, score_store(db, tmp_path / "out", models_dir=tmp_path / "m")


def test_decisions_change_state_and_are_audited(ring):
    tmp, db, res = ring
    alert = _alert_of(res, "v1")
    con = open_casework(db)
    with pytest.raises(DispositionError, match="needs a reason"):
        record_disposition(con, alert, "dismiss", "ann")
    with pytest.raises(DispositionError, match="needs a note"):
        record_disposition(con, alert, "dismiss", "ann", reason="other")
    record_disposition(con, alert, "request_info", "ann", note="ask for the tenancy contract")
    record_disposition(con, alert, "escalate", "bob")
    with pytest.raises(DispositionError, match="is escalated"):
        record_disposition(con, alert, "dismiss", "ann", reason="explained")
    log = con.audit_rows().select("user_name", "action", "previous_status", "new_status", "note").rows()
    assert log == [
        ("ann", "request_info", "open", "info_requested", "ask for the tenancy contract"),
        ("bob", "escalate", "info_requested", "escalated", None),
    ]
    assert _status(db, alert) == "escalated"


def test_a_decision_keeps_no_stray_reason_control_characters_or_endless_note(ring):
    """Found by a hostile-request sweep of the review page: an escalation posted with a dismissal reason logged it,
    a NUL in a note was stored as is, and a note of 60,000 characters was kept and shown whole."""
    from casework.dispositions import MAX_NOTE

    tmp, db, res = ring
    alert = _alert_of(res, "v1")
    con = open_casework(db)
    with pytest.raises(DispositionError, match="needs a note"):  # a note of control characters only is no note
        record_disposition(con, alert, "dismiss", "ann", reason="other", note="\x00\x85")
    for user in ("", "   ", "bob\nALERT: forged", "bob\x85ALERT", "bob\u2028ALERT"):  # never blank, never two lines
        with pytest.raises(DispositionError, match="needs a user"):
            record_disposition(con, alert, "request_info", user)
    with pytest.raises(DispositionError, match=f"a note is at most {MAX_NOTE:,} characters"):
        record_disposition(con, alert, "request_info", "ann", note="x" * (MAX_NOTE + 1))
    record_disposition(con, alert, "request_info", "ann", reason="explained", note="line\x00one\nline\ttwo\x07\x85")
    record_disposition(con, alert, "reopen", "ann", note="y" * MAX_NOTE)  # the longest note is kept whole
    log = con.audit_rows().select("action", "reason", "note").rows()
    assert log == [("request_info", None, "lineone\nline\ttwo"), ("reopen", None, "y" * MAX_NOTE)]


def test_an_escalated_account_lifts_the_accounts_linked_to_it(ring):
    tmp, db, res = ring
    assert "NET_LINKED_TO_REPORTED" not in set(res.alerts.explode("rules")["rules"].to_list())
    record_disposition(open_casework(db), _alert_of(res, "ctrl"), "escalate", "bob")
    again = score_store(db, tmp / "out2", models_dir=tmp / "m")
    hits = again.alerts.filter(pl.col("rules").list.contains("NET_LINKED_TO_REPORTED"))
    # v1 and v2 paid the escalated controller and gain score; the friend's one EUR 700 payment is a link too,
    # but a link alone (0.225) stays under the alert threshold: propagation lifts, it does not accuse
    assert {"v1", "v2"} <= set(hits["account_id"]) and "friend" not in set(again.alerts["account_id"])
    before = dict(zip(res.alerts["account_id"], res.alerts["score"]))
    after = dict(zip(again.alerts["account_id"], again.alerts["score"]))
    assert after["v1"] > before["v1"] and after["v2"] > before["v2"]
    reason = hits.filter(pl.col("account_id") == "v1")["reasons"][0]
    assert "paid EUR 1800 to an account escalated alert" in reason
    # the escalated alert itself is still the same alert, still escalated
    assert _status(db, _alert_of(res, "ctrl")) == "escalated" and _alert_of(again, "ctrl") == _alert_of(res, "ctrl")
    # and it keeps lifting its links once its FIU report is written
    mark_reported(open_casework(db), _alert_of(res, "ctrl"), "bob", "goaml-x.xml")
    third = score_store(db, tmp / "out3", models_dir=tmp / "m")
    assert {"v1", "v2"} <= set(third.alerts.filter(pl.col("rules").list.contains("NET_LINKED_TO_REPORTED"))["account_id"])


def test_a_dismissed_account_is_not_raised_again_for_the_same_reasons(ring):
    tmp, db, res = ring
    alert = _alert_of(res, "z")
    assert (
        main(["dispose", "--db", str(db), "--alert", alert, "--action", "dismiss", "--user", "ann", "--reason", "explained"]) == 0
    )
    again = score_store(db, tmp / "out2", models_dir=tmp / "m")
    assert "z" not in set(again.alerts["account_id"])
    # unless the score rises materially: a threshold of -1 counts any score as a rise
    third = score_store(db, tmp / "out3", config={"review": {"dismissed_rise": -1}}, models_dir=tmp / "m")
    assert "z" in set(third.alerts["account_id"]) and _alert_of(third, "z") != alert


def test_dispose_command_names_a_bad_request(ring, capsys):
    tmp, db, res = ring
    assert main(["dispose", "--db", str(db), "--alert", "no-such", "--action", "escalate", "--user", "ann"]) == 2
    assert "no alert no-such" in capsys.readouterr().err
