"""The nightly run: scoring a store day by day with the kept feature parts gives the alerts of scoring it from scratch;
a late booking or correction for a closed day, a changed window, a purge or a rekey makes the run rebuild them.
The two nights are 25 and 26 October 2026: Amsterdam leaves summer time in the first (a 25-hour day)."""

import json
import shutil

import polars as pl
import pytest

from detectors.features import compute_features
from detectors.nightly import CACHE_TABLES, features, unusable
from detectors.nightly_window import define_kept_window, state
from detectors.scoring import score_store
from detectors.window import CATEGORIES, define_window
from pipelines import store
from pipelines.ingest import ingest
from pipelines.purge import purge_store
from pipelines.rekey import rekey_store
from schemas.settings import parse_settings
from synthetic.generate import generate
from synthetic.nightly import split_days
from tests.cluster_order import cluster_by_rows, cluster_runs
from tests.same_alerts import assert_same_alerts

DAYS = 30  # shorter than the 45 generated days, so every night also drops bookings that left the window
SCRATCH = {"window.days": DAYS, "window.keep_parts": False}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    generate(root / "gen", accounts=1500, days=45, banks=2, seed=5, laundering=True, end="2026-10-26")
    base, nights = split_days(root / "gen", root / "split", last=2)
    for night, day in zip(nights, ("2026-10-25", "2026-10-26")):  # the first is the 25-hour day
        booked = pl.read_parquet([b / "transactions.parquet" for b in night])["booked_at"]
        local = booked.dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Amsterdam").dt.date().unique()
        assert local.cast(pl.Utf8).to_list() == [day]
    return base, nights


def ingest_rows(db, submission) -> int:
    """Bookings the store holds from `submission` (its manifest's transactions file)."""
    con = store.connect(db)
    try:
        return con.execute(
            "SELECT count(*) FROM transactions WHERE submission_id IN (SELECT submission_id FROM submissions WHERE path = ?)",
            [str(submission)],
        ).fetchall()[0][0]
    finally:
        con.close()


def _load(db, *submissions):
    for folder in submissions:
        out = ingest(folder, db)
        assert out.accepted, out.message


def _score(db, tmp_path, **kw):
    kw.setdefault("overrides", {"window.days": DAYS})
    return score_store(db, tmp_path / "out" / db.stem, models_dir=tmp_path / "models", **kw)


def _cache_log(db) -> list[dict]:
    con = store.connect(db)
    try:
        return [json.loads(r[0]) for r in con.execute("SELECT window_cache FROM runs ORDER BY started_at").fetchall()]
    finally:
        con.close()


def _features_both_ways(db, tmp_path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The features of the store's window from the kept parts and from scratch, on a copy of the store."""
    copy = tmp_path / "check.duckdb"
    shutil.copy(db, copy)
    con = store.connect(copy)
    try:
        w = define_window(con, DAYS, categories=CATEGORIES)
        rows = con.execute("SELECT count(*) FROM win_tx").fetchone()[0]
        kept, info = features(con, w, CATEGORIES, rows, "check")
        return kept, compute_features(con, DAYS), info
    finally:
        con.close()


def test_night_by_night_gives_the_alerts_of_a_run_from_scratch(split, tmp_path, monkeypatch):
    """Also: nights append their bookings after the kept ones; once those pass RESORT_SHARE of the window, the night
    stores the whole kept window in cluster order again (the rules' reads stay cheap)."""
    import detectors.nightly_window as nightly_window

    base, nights = split
    db = tmp_path / "nightly.duckdb"
    _load(db, *base)
    _score(db, tmp_path, refit=True)  # the first run: nothing kept yet, the model is fitted and saved
    for night, share in zip(nights, (1.0, 0.0)):  # below the share: appended as they come; then any appended booking passes it
        monkeypatch.setattr(nightly_window, "RESORT_SHARE", share)
        _load(db, *night)
        nightly = _score(db, tmp_path)
        con = store.connect(db)
        try:
            runs, in_order = cluster_runs(con, "window_cache_tx")
            if share:
                added = _cache_log(db)[-1]["window"]["bookings_added"]
                assert runs > in_order and state(con)["unsorted_rows"] == added > 0
            else:
                assert _cache_log(db)[-1]["window"]["resorted"] and runs == in_order and state(con)["unsorted_rows"] == 0
                stored, exactly = cluster_by_rows(con, "window_cache_tx")  # re-sorted: every row, exactly in order
                assert stored.height == state(con)["window_rows"] and exactly
        finally:
            con.close()
    first, *later = _cache_log(db)
    assert not first["used"] and first["why_not"] == "nothing kept yet"
    assert not first["window"]["used"] and first["window"]["why_not"] == "nothing kept yet"
    assert [c["used"] for c in later] == [True, True] and [c["window"]["used"] for c in later] == [True, True]
    assert all(c["bookings_added"] > 0 and c["bookings_removed"] > 0 for c in later)  # the window moved at both ends
    # the kept window added and dropped the same bookings as the kept parts
    assert [(c["bookings_added"], c["bookings_removed"]) for c in later] == [
        (c["window"]["bookings_added"], c["window"]["bookings_removed"]) for c in later
    ]

    fresh = tmp_path / "fresh.duckdb"
    _load(fresh, *base, *nights[0], *nights[1])
    scratch = _score(fresh, tmp_path, overrides=SCRATCH)
    assert _cache_log(fresh) == [None]  # keep_parts off: the old path, nothing kept
    assert (nightly.window_start, nightly.window_end) == (scratch.window_start, scratch.window_end)
    assert_same_alerts(scratch, nightly)

    kept, from_scratch, info = _features_both_ways(
        db, tmp_path
    )  # the kept parts after two nights equal a rebuild, figure by figure
    assert info["used"] and info["bookings_added"] == 0
    assert kept.equals(from_scratch)
    for kept_part, rebuilt in _kept_inputs_both_ways(db, tmp_path):
        assert kept_part.height > 0 and kept_part.equals(rebuilt)
    kept_tx, scratch_tx = _windows_both_ways(db)  # the kept window after two nights equals a rebuild, booking by booking
    assert kept_tx.height > 0 and kept_tx.schema == scratch_tx.schema and kept_tx.equals(scratch_tx)


def _windows_both_ways(db) -> tuple[pl.DataFrame, pl.DataFrame]:
    """win_tx as the nightly run left it in the store and as define_window builds it from the bookings."""
    con = store.connect(db)
    try:
        assert state(con)["window_rows"] == con.execute("SELECT count(*) FROM window_cache_tx").fetchall()[0][0]
        kept = con.sql("SELECT * FROM window_cache_tx ORDER BY txn_id").pl()
        define_window(con, DAYS, categories=CATEGORIES)
        return kept, con.sql("SELECT * FROM win_tx ORDER BY txn_id").pl()
    finally:
        con.close()


def _correct_closed_day(base_bank, out):
    """A resubmission of five bookings of a closed day with other amounts: same txn ids (they replace the old rows),
    so the window keeps its number of bookings."""
    out.mkdir()
    tx = pl.read_parquet(base_bank / "transactions.parquet")
    tx = tx.filter(pl.col("booked_at") >= pl.col("booked_at").max() - pl.duration(days=10)).head(5)
    tx = tx.with_columns((pl.col("amount_eur") * 7).cast(tx.schema["amount_eur"]))
    tx.write_parquet(out / "transactions.parquet")
    shutil.copy(base_bank / "accounts.parquet", out / "accounts.parquet")
    manifest = json.loads((base_bank / "manifest.json").read_text())
    from pipelines.submission import write_manifest

    rows = {"transactions.parquet": tx.height, "accounts.parquet": manifest["files"]["accounts.parquet"]["rows"]}
    write_manifest(out, manifest["bank_id"], manifest["period_start"], manifest["period_end"], rows)
    return out


def test_a_night_one_bank_is_silent_and_its_late_day_after(split, tmp_path):
    """Bank B sends nothing on the first night: the run carries the kept parts with bank A's day alone and gives the
    alerts of a run from scratch on the same bookings. B then sends its second day with A's, and its first day only
    after that: bookings added to days the kept parts already hold, earlier than B's latest kept ones. They are added
    like a new day's (no rebuild), and the alerts, the features and the kept window equal a run from scratch."""
    base, (night1, night2) = split
    db = tmp_path / "silent.duckdb"
    _load(db, *base)
    _score(db, tmp_path, refit=True)
    _load(db, night1[0])
    silent = _score(db, tmp_path)
    assert _cache_log(db)[-1]["used"] and _cache_log(db)[-1]["window"]["used"]
    fresh = tmp_path / "fresh1.duckdb"
    _load(fresh, *base, night1[0])
    assert_same_alerts(_score(fresh, tmp_path, overrides=SCRATCH), silent)

    _load(db, *night2)
    _score(db, tmp_path)
    _load(db, night1[1])  # B's first day, last
    caught_up = _score(db, tmp_path)
    last = _cache_log(db)[-1]
    assert last["used"] and last["window"]["used"], last  # carried: B's late day added, not a rebuild
    assert last["bookings_added"] == last["window"]["bookings_added"] == ingest_rows(db, night1[1]) > 0
    assert last["bookings_removed"] == 0
    fresh = tmp_path / "fresh2.duckdb"
    _load(fresh, *base, *night1, *night2)
    assert_same_alerts(_score(fresh, tmp_path, overrides=SCRATCH), caught_up)
    kept, from_scratch, _ = _features_both_ways(db, tmp_path)
    assert kept.equals(from_scratch)
    for kept_part, rebuilt in _kept_inputs_both_ways(db, tmp_path):  # what the next nights start from is right too
        assert kept_part.height > 0 and kept_part.equals(rebuilt)
    kept_tx, scratch_tx = _windows_both_ways(db)
    assert kept_tx.equals(scratch_tx)


def _kept_inputs_both_ways(db, tmp_path) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """The kept last-seen values and daily totals, and the same built from the window's bookings, on a copy. A kept
    value may hold a last-seen time from before the window (carried nights expire them lazily: the counts only look
    inside the window), so last-seen times are compared inside the window."""
    from detectors.features import feature_inputs, window_start

    copy = tmp_path / "inputs.duckdb"
    shutil.copy(db, copy)
    con = store.connect(copy)
    try:
        define_window(con, DAYS, categories=CATEGORIES)
        feature_inputs(con, DAYS)
        seen = f"bank_id, account_id, kind, value, list_transform(last_seen, lambda t: CASE WHEN t > {window_start(DAYS)} THEN t END)"
        pairs = [(f"SELECT {seen} FROM feature_cache_values", f"SELECT {seen} FROM acct_values")]
        pairs += [("SELECT * FROM feature_cache_days", "SELECT * FROM acct_days")]
        return [(con.sql(f"{k} ORDER BY ALL").pl(), con.sql(f"{t} ORDER BY ALL").pl()) for k, t in pairs]
    finally:
        con.close()


def test_a_correction_for_a_closed_day_rebuilds_the_kept_parts(split, tmp_path):
    base, nights = split
    db = tmp_path / "late.duckdb"
    _load(db, *base)
    _score(db, tmp_path, refit=True)
    correction = _correct_closed_day(base[0], tmp_path / "correction")
    assert ingest(correction, db).rows_replaced == 5
    _load(db, *nights[0])
    late = _score(db, tmp_path)
    last = _cache_log(db)[-1]
    assert not last["used"] and "late bookings or corrections" in last["why_not"]
    assert not last["window"]["used"] and "late bookings or corrections" in last["window"]["why_not"]
    kept_tx, scratch_tx = _windows_both_ways(db)  # the rebuilt window holds the corrected amounts
    assert kept_tx.equals(scratch_tx)

    fresh = tmp_path / "fresh.duckdb"
    _load(fresh, *base)
    assert ingest(correction, fresh).rows_replaced == 5
    _load(fresh, *nights[0])
    assert_same_alerts(_score(fresh, tmp_path, overrides=SCRATCH), late)


def test_a_deleted_booking_or_another_window_length_is_not_carried(split, tmp_path):
    base, _ = split
    db = tmp_path / "s.duckdb"
    _load(db, *base)
    _score(db, tmp_path, refit=True)
    con = store.connect(db)
    try:
        w = define_window(con, DAYS, categories=CATEGORIES)
        state = con.execute(
            "SELECT window_days, fingerprint, window_start, window_end, window_rows, submissions_until FROM feature_cache"
        )
        state = dict(
            zip(
                ("window_days", "fingerprint", "window_start", "window_end", "window_rows", "submissions_until"),
                state.fetchall()[0],
            )
        )
        from detectors.nightly import fingerprint

        fp = fingerprint(DAYS, CATEGORIES)
        assert unusable(con, state, fp, w) is None  # the near miss: nothing changed, the parts carry over
        assert (
            unusable(con, state, fingerprint(DAYS + 1, CATEGORIES), w)
            == "window length, categories or feature definitions changed"
        )
        con.execute("DELETE FROM transactions WHERE txn_id = (SELECT min(txn_id) FROM win_tx)")
        assert "added or deleted since" in unusable(con, state, fp, w)
    finally:
        con.close()


def test_purge_and_rekey_empty_the_kept_parts(split, tmp_path):
    base, _ = split
    db = tmp_path / "s.duckdb"
    _load(db, *base)
    _score(db, tmp_path, refit=True)

    def kept(con) -> dict[str, int]:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CACHE_TABLES}

    con = store.connect(db)
    try:
        assert all(kept(con).values())
        out = rekey_store(con, (b"old-key-0001",), (b"old-key-0001", b"new-key-0002"), "test")
        assert out["rows"]["feature_cache_values (emptied)"] > 0 and not any(kept(con).values())
        assert out["rows"]["window_cache_tx (emptied)"] > 0  # the kept window held the bookings under the old key
    finally:
        con.close()
    _score(db, tmp_path)
    assert _cache_log(db)[-1]["why_not"] == "nothing kept yet"  # rebuilt from the re-keyed bookings
    con = store.connect(db)
    try:
        assert all(kept(con).values())
        res = purge_store(con, parse_settings({}))
        assert res.deleted["feature_cache"] == 1 and res.deleted["window_cache"] == 1 and not any(kept(con).values())
    finally:
        con.close()


def test_one_connection_builds_the_window_kept_and_from_scratch_in_turn(split, tmp_path):
    """win_tx is a view of the kept window on a nightly run (carried or rebuilt: a first load writes the kept window once)
    and a temp table on a one-process run: scoring twice in one connection (a backtest after a nightly run) replaces one
    with the other, with the same bookings."""
    base, _ = split
    db = tmp_path / "s.duckdb"
    _load(db, *base)
    con = store.connect(db)
    try:

        def rows() -> pl.DataFrame:
            return con.sql("SELECT * FROM win_tx ORDER BY txn_id").pl()

        def is_view() -> bool:
            return (
                con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'win_tx' AND temporary").fetchall()[0][0] == 1
            )

        _, first = define_kept_window(con, DAYS, CATEGORIES, "r1")
        built = rows()
        assert is_view() and con.sql("SELECT * FROM window_cache_tx ORDER BY txn_id").pl().equals(built)
        _, second = define_kept_window(con, DAYS, CATEGORIES, "r2")
        assert (first["used"], second["used"]) == (False, True) and second["bookings_added"] == 0
        assert rows().equals(built)
        define_window(con, DAYS, categories=CATEGORIES)
        assert not is_view() and rows().equals(built)
        assert define_kept_window(con, DAYS, CATEGORIES, "r3")[1]["used"] and rows().equals(built)
        assert state(con)["window_rows"] == built.height
    finally:
        con.close()
