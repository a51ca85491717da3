import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def copy_sample(tmp_path):
    """Copy a shipped sample folder into tmp so a test may change it."""

    def _copy(rel: str) -> Path:
        dst = tmp_path / rel.replace("/", "_")
        shutil.copytree(SAMPLES / rel, dst)
        return dst

    return _copy


_GENERATED: dict[tuple, Path] = {}  # one generated and loaded store per set of arguments, copied to each caller


def generated_store(root: Path, accounts: int = 4000, days: int = 60, seed: int = 5, laundering: bool = True) -> Path:
    """A two-bank generated extract under root/gen (with the planted laundering patterns unless told otherwise),
    loaded into root/s.duckdb. Modules asking for the same one get copies of the first (generating and loading costs
    seconds; the copies are theirs to change)."""
    import atexit
    import tempfile

    from pipelines.ingest import ingest
    from synthetic.generate import generate

    key, db = (accounts, days, seed, laundering), root / "s.duckdb"
    made = _GENERATED.get(key)
    if made is None:
        made = Path(tempfile.mkdtemp(prefix="thb-test-store-"))
        atexit.register(shutil.rmtree, made, True)
        generate(made / "gen", accounts=accounts, days=days, banks=2, seed=seed, laundering=laundering)
        for bank in ("BANK_A", "BANK_B"):
            assert ingest(made / "gen" / bank, made / "s.duckdb").outcome == "loaded"
        _GENERATED[key] = made
    shutil.copytree(made / "gen", root / "gen")
    shutil.copy(made / "s.duckdb", db)
    return db


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test of a test process (startup costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="module")
def web(site, tmp_path_factory):
    """The review site over the shared test store (tests/test_review.py's `site`), served for a browser: base URL, the
    scoring result and a folder for browser profiles; the browser test modules import `site`."""
    from casework.review.app import Review
    from tests.browser import browser_missing, served

    assert not browser_missing(), browser_missing()
    root, db, res, users, ids = site
    with served(Review(db, users).app()) as base:
        yield base, res, tmp_path_factory.mktemp("chromium")


def pytest_collection_modifyitems(config, items):
    """Files holding a slow test run first: `make test` hands whole files to two processes in collection order, and
    a long file started last would leave one process working alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within and between files is kept otherwise
