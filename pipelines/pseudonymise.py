"""What a bank runs before it submits: keyed hashes instead of raw identifiers.

HMAC-SHA256 with the key the partners share, computed inside DuckDB (sha256 over the standard
ipad/opad construction), so the same IBAN gets the same id at every bank and a 10-million-row
file never passes through a Python loop. Values are normalised first (trimmed, upper case,
spaces removed) so 'NL91 ABNA 0417 1643 00' and 'nl91abna0417164300' hash alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from pipelines import store
from pipelines.submission import write_manifest
from schemas.checks import quote
from schemas.contract import PSEUDONYMISED

ID_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free at any realistic scale, half the storage


def read_key(key_file: str | Path) -> bytes:
    key = Path(key_file).read_bytes().strip()
    if len(key) < 16:
        raise ValueError(f"{key_file}: the key must be at least 16 bytes")
    return key


def _pads(key: bytes) -> tuple[str, str]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    k = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k).hex(), bytes(b ^ 0x5C for b in k).hex()


def normalise(value: str) -> str:
    return value.strip().upper().replace(" ", "")


def pseudonym(value: str, key: bytes) -> str:
    """The same function in Python, for tests and for a bank's own tooling."""
    return hmac.new(key, normalise(value).encode(), hashlib.sha256).hexdigest()[:ID_HEX_CHARS]


def sql_pseudonym(column: str) -> str:
    """The HMAC of a contract column; the key's pads are the bound parameters $ipad and $opad."""
    norm = f"upper(replace(trim(CAST({quote(column)} AS VARCHAR)), ' ', ''))"
    digest = "sha256(unhex($opad) || unhex(sha256(unhex($ipad) || encode(" + norm + "))))"
    return f"CASE WHEN {quote(column)} IS NULL THEN NULL ELSE left({digest}, {ID_HEX_CHARS}) END"


def pseudonymise(raw_dir: str | Path, out_dir: str | Path, key_file: str | Path) -> dict[str, int]:
    """Hash the identifier columns of every contract file in raw_dir into out_dir (same format)."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    key = read_key(key_file)
    ipad, opad = _pads(key)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = store.connect()
    rows: dict[str, int] = {}
    try:
        for stem, id_cols in PSEUDONYMISED.items():
            for suffix in (".parquet", ".csv"):
                src = raw_dir / f"{stem}{suffix}"
                if not src.exists():
                    continue
                reader = (
                    "read_parquet($src)" if suffix == ".parquet" else "read_csv($src, header=true, delim=',', all_varchar=true)"
                )
                cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", {"src": str(src)}).fetchall()]
                select = ", ".join(f"{sql_pseudonym(c)} AS {quote(c)}" if c in id_cols else quote(c) for c in cols)
                dst = out_dir / src.name
                fmt = "(FORMAT parquet, COMPRESSION zstd)" if suffix == ".parquet" else "(FORMAT csv, HEADER true)"
                params = {"src": str(src), "dst": str(dst)} | (
                    {"ipad": ipad, "opad": opad} if any(c in id_cols for c in cols) else {}
                )
                con.execute(f"COPY (SELECT {select} FROM {reader}) TO $dst {fmt}", params)
                rows[dst.name] = con.execute(f"SELECT count(*) FROM {reader}", {"src": str(src)}).fetchone()[0]
    finally:
        con.close()
    manifest = raw_dir / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        write_manifest(out_dir, m.get("bank_id"), m.get("period_start"), m.get("period_end"), rows)
    return rows
