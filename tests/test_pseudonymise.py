"""Pseudonymisation: keyed, deterministic, the same in SQL and Python, and its output validates."""

import polars as pl

from pipelines.cli import main
from pipelines.pseudonymise import pseudonym, pseudonymise
from pipelines.validation import validate
from tests.conftest import SAMPLES


def _raw(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw = tmp_path / "raw"
    raw.mkdir()
    tx = pl.read_csv(SAMPLES / "valid" / "BANK_A" / "transactions.csv", infer_schema=False).head(50)
    acc = pl.read_csv(SAMPLES / "valid" / "BANK_A" / "accounts.csv", infer_schema=False)
    ibans = ["NL91ABNA0417164300", "NL02 RABO 0123 4567 89", "DE89370400440532013000"]
    mapping = {a: ibans[i % 3] + ("" if i < 3 else str(i)) for i, a in enumerate(acc["account_id"])}
    tx = tx.with_columns(pl.col("account_id").replace(mapping), pl.col("counterparty_id").replace(mapping))
    acc = acc.with_columns(pl.col("account_id").replace(mapping))
    tx.write_csv(raw / "transactions.csv")
    acc.write_csv(raw / "accounts.csv")
    return raw


def test_same_key_same_id_other_key_other_id(tmp_path):
    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    k1.write_text("partners-shared-key-0001")
    k2.write_text("another-partners-key-0002")
    raw = _raw(tmp_path)
    pseudonymise(raw, tmp_path / "o1", k1)
    pseudonymise(raw, tmp_path / "o1b", k1)
    pseudonymise(raw, tmp_path / "o2", k2)
    a = pl.read_csv(tmp_path / "o1" / "accounts.csv", infer_schema=False)
    b = pl.read_csv(tmp_path / "o1b" / "accounts.csv", infer_schema=False)
    c = pl.read_csv(tmp_path / "o2" / "accounts.csv", infer_schema=False)
    assert a["account_id"].to_list() == b["account_id"].to_list()
    assert set(a["account_id"]) & set(c["account_id"]) == set()
    key = k1.read_bytes()
    assert a["account_id"][0] == pseudonym("NL91ABNA0417164300", key)
    assert pseudonym("nl91 abna 0417 1643 00", key) == pseudonym("NL91ABNA0417164300", key)  # formatting does not matter
    assert "NL91" not in (tmp_path / "o1" / "transactions.csv").read_text()


def test_raw_extract_is_refused_and_pseudonymised_one_validates(tmp_path):
    raw = _raw(tmp_path)
    assert validate(raw).fault.fault == "raw identifier"
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    pseudonymise(raw, tmp_path / "out", key)
    v = validate(tmp_path / "out")
    assert v.fault is None, v.fault


def test_an_unreadable_raw_file_is_one_line_without_its_raw_content(tmp_path, capsys):
    """Found by a hostile-input sweep: a raw CSV with a non-UTF-8 byte gave a traceback quoting the whole raw line
    (an IBAN and an e-mail address in it). Now one line, masked, and no half-written file."""
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    raw = _raw(tmp_path)
    lines = (raw / "transactions.csv").read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b",", b",\xe9 jan@example.com,", 1)
    (raw / "transactions.csv").write_bytes(b"\n".join(lines))
    assert main(["pseudonymise", str(raw), str(tmp_path / "out"), "--key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "transactions.csv: cannot be read, nothing written for it" in err
    assert "NL91ABNA" not in err and "jan@example.com" not in err
    assert not (tmp_path / "out" / "transactions.csv").exists()


def test_a_raw_folder_without_a_manifest_gets_one_from_its_data(tmp_path, capsys):
    """Found by a README walk-through: the README says pseudonymise writes a valid manifest, but it wrote one only when
    the raw folder had one, and the default intake then refused the folder. The bank and period now come from the
    data (one bank, the Dutch days of the first and last booking); with several banks it says why there is none."""
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    raw = _raw(tmp_path)
    assert main(["pseudonymise", str(raw), str(tmp_path / "out"), "--key-file", str(key)]) == 0
    said = capsys.readouterr().out
    tx = pl.read_csv(raw / "transactions.csv", infer_schema=False)
    days = tx["booked_at"].str.to_datetime(time_zone="UTC").dt.convert_time_zone("Europe/Amsterdam").dt.date()
    assert f"manifest.json: bank BANK_A, period {days.min()}..{days.max()} (from the data)" in said
    assert validate(tmp_path / "out", require_manifest=True).fault is None
    two = tmp_path / "two"
    two.mkdir()
    tx.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("BANK_B")).otherwise("bank_id").alias("bank_id")).write_csv(
        two / "transactions.csv"
    )
    assert main(["pseudonymise", str(two), str(tmp_path / "out2"), "--key-file", str(key)]) == 0
    assert "no manifest.json written" in capsys.readouterr().out and not (tmp_path / "out2" / "manifest.json").exists()


def test_the_manifest_from_the_data_reads_times_without_an_offset_as_utc(tmp_path, monkeypatch):
    """From a review: the period came from the machine's time zone, so under TZ=Europe/Amsterdam a booking at 22:30
    without an offset (UTC by the contract: 00:30 the next Dutch day) fell outside the manifest's period. A stale
    manifest from an earlier run is not left to describe other files either."""
    import time

    from pipelines.pseudonymise import manifest_from_data

    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        out = tmp_path / "out"
        out.mkdir()
        pl.DataFrame({"bank_id": ["BANK_A"] * 2, "booked_at": ["2026-09-01T10:00:00", "2026-09-03T22:30:00"]}).write_csv(
            out / "transactions.csv"
        )
        assert manifest_from_data(out, {"transactions.csv": 2}) == ("BANK_A", "2026-09-01", "2026-09-04")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    stale = tmp_path / "o2"
    stale.mkdir()
    (stale / "manifest.json").write_text('{"bank_id": "OLD"}')
    two = tmp_path / "two"
    two.mkdir()
    pl.DataFrame({"bank_id": ["BANK_A", "BANK_B"], "booked_at": ["2026-09-01T10:00:00"] * 2}).write_csv(two / "transactions.csv")
    pseudonymise(two, stale, key)  # two banks: no manifest from the data, and the old one is gone
    assert not (stale / "manifest.json").exists()


def test_a_column_the_contract_does_not_name_is_refused_not_copied_raw(tmp_path, capsys):
    """Found by a hostile-input sweep: a header Account_ID (not account_id) or an extra iban column was copied as it
    was, raw IBANs and all, with exit 0 and a manifest ready to send."""
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    for case, rename in (("case", {"account_id": "Account_ID"}), ("extra", {})):
        raw = _raw(tmp_path / case)
        tx = pl.read_csv(raw / "transactions.csv", infer_schema=False).rename(rename)
        if not rename:
            tx = tx.with_columns(pl.col("account_id").alias("iban"))
        tx.write_csv(raw / "transactions.csv")
        out = tmp_path / case / "out"
        assert main(["pseudonymise", str(raw), str(out), "--key-file", str(key)]) == 2
        err = capsys.readouterr().err
        assert "are not in the contract" in err and "NL91" not in err
        assert not (out / "transactions.csv").exists()


def test_a_raw_manifest_that_is_not_one_is_one_line(tmp_path, capsys):
    """Found by a hostile-input sweep: a raw manifest.json of [1, 2] gave an AttributeError traceback."""
    key = tmp_path / "k"
    key.write_text("partners-shared-key-0001")
    raw = _raw(tmp_path)
    (raw / "manifest.json").write_text("[1, 2]")
    assert main(["pseudonymise", str(raw), str(tmp_path / "out"), "--key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "manifest.json: not a manifest" in err


def test_a_key_file_of_raw_bytes_is_refused(tmp_path, capsys):
    """Found by a hostile-input sweep: raw bytes were split at any newline byte they held, giving a chain of several
    keys or "line 2: the key must be at least 16 bytes" depending on the bytes."""
    key = tmp_path / "k"
    key.write_bytes(bytes(range(256)) * 2)
    assert main(["pseudonymise", str(_raw(tmp_path)), str(tmp_path / "out"), "--key-file", str(key)]) == 2
    assert "a key file is text, one key per line" in capsys.readouterr().err
