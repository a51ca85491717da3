"""What a bank runs before it submits: keyed hashes instead of raw identifiers.

HMAC-SHA256 with the key the partners share, computed inside DuckDB (sha256 over the standard
ipad/opad construction), so the same IBAN gets the same id at every bank and a 10-million-row
file never passes through a Python loop. Values are normalised first (trimmed, upper case,
spaces removed) so 'NL91 ABNA 0417 1643 00' and 'nl91abna0417164300' hash alike.

Keys are versioned. A key file holds the key chain, one key per line, oldest first; after a rotation the
pseudonym is the new key's HMAC of the old pseudonym (HMAC(k2, HMAC(k1, iban))). That is what lets the store be
re-keyed without the raw identifiers (`thb-signals rekey` applies the new key to every stored pseudonym) while
accounts submitted before and after the rotation still link; someone holding a leaked old key alone can no longer
compute a stored id. `key_id` names a key without revealing it; the manifest carries the chain's last one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import duckdb

from pipelines import store
from pipelines.submission import write_manifest
from schemas.checks import quote
from schemas.contract import PSEUDONYMISED

ID_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free at any realistic scale, half the storage


def read_key(key_file: str | Path) -> tuple[bytes, ...]:
    """The key chain in a key file: one key per line of text, oldest first (a file of one line: one key). Raw bytes
    are refused: split at whatever newline bytes they hold, they made a chain of several keys or a short one."""
    raw = Path(key_file).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or any(not (ch.isprintable() or ch in "\r\n") for ch in text):
        raise ValueError(f"{key_file}: a key file is text, one key per line (e.g. made with: head -c 32 /dev/urandom | base64)")
    keys = tuple(k.strip() for k in raw.splitlines() if k.strip())
    if not keys:
        raise ValueError(f"{key_file}: no key in the file")
    for n, key in enumerate(keys, 1):
        if len(key) < 16:
            raise ValueError(f"{key_file}: line {n}: the key must be at least 16 bytes")
    return keys


def _chain(key: bytes | tuple[bytes, ...]) -> tuple[bytes, ...]:
    return (key,) if isinstance(key, bytes) else tuple(key)


def key_id(key: bytes | tuple[bytes, ...]) -> str:
    """A key's public name (of a chain: its newest key): a keyed hash of a fixed text, so it reveals nothing."""
    return hmac.new(_chain(key)[-1], b"thb-signals key id", hashlib.sha256).hexdigest()[:16]


def _pads(key: bytes) -> tuple[str, str]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    k = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k).hex(), bytes(b ^ 0x5C for b in k).hex()


def normalise(value: str) -> str:
    return value.strip().upper().replace(" ", "")


def pseudonym(value: str, key: bytes | tuple[bytes, ...]) -> str:
    """The same function in Python, for tests and for a bank's own tooling; a chain applies its keys in turn."""
    for k in _chain(key):
        value = hmac.new(k, normalise(value).encode(), hashlib.sha256).hexdigest()[:ID_HEX_CHARS]
    return value


def _sql_layer(expr: str, layer: int) -> str:
    norm = f"upper(replace(trim(CAST({expr} AS VARCHAR)), ' ', ''))"
    pads = ("$ipad", "$opad") if layer == 0 else (f"$ipad{int(layer)}", f"$opad{int(layer)}")
    digest = f"sha256(unhex({pads[1]}) || unhex(sha256(unhex({pads[0]}) || encode({norm}))))"
    return f"left({digest}, {ID_HEX_CHARS})"


def sql_pseudonym(column: str, layers: int = 1, expr: str | None = None) -> str:
    """The HMAC of a column (or of `expr`, code-owned SQL) under a key chain of `layers` keys; the pads are the bound
    parameters $ipad/$opad (first key), $ipad1/$opad1 (second) ... (`pad_params`)."""
    value = expr or quote(column)
    out = value
    for layer in range(layers):
        out = _sql_layer(out, layer)
    return f"CASE WHEN {value} IS NULL THEN NULL ELSE {out} END"


def pad_params(key: bytes | tuple[bytes, ...]) -> dict[str, str]:
    """The bound parameters `sql_pseudonym` needs for this key (chain)."""
    params = {}
    for layer, k in enumerate(_chain(key)):
        ipad, opad = _pads(k)
        suffix = "" if layer == 0 else str(layer)
        params |= {f"ipad{suffix}": ipad, f"opad{suffix}": opad}
    return params


def _reader(suffix: str) -> str:
    """The DuckDB reader of a contract file, its path bound as $src: every CSV value as text, as submitted."""
    return "read_parquet($src)" if suffix == ".parquet" else "read_csv($src, header=true, delim=',', all_varchar=true)"


def unreadable(src: Path, e: Exception) -> ValueError:
    """One line for a raw file DuckDB cannot read. The raw extract still holds IBANs, e-mails and phone numbers, and
    DuckDB quotes the offending line after the first: only the first line is kept, and masked besides."""
    from detectors.scoring import mask_identifiers  # here: scoring's imports are not needed until a file fails

    first = mask_identifiers(str(e).split("\n")[0])
    return ValueError(f"{src.name}: cannot be read, nothing written for it: {first}")


def _only_contract_columns(src: Path, stem: str, cols: list[str]) -> None:
    """Only the contract's columns, by their exact names, pass: `Account_ID` or an extra `iban` column would be copied
    as it is, raw identifiers and all, into a folder that looks ready to send."""
    from detectors.scoring import mask_identifiers
    from schemas import contract

    known = {c.name for c in contract.columns(stem, fiu=True)}
    extra = [c for c in cols if c not in known]
    if extra:
        raise ValueError(
            f"{src.name}: column(s) {mask_identifiers(', '.join(extra))} are not in the contract (names as in "
            "docs/contract.md, lower case); nothing written for it: a column the contract does not name could hold raw "
            "identifiers"
        )


def pseudonymise(raw_dir: str | Path, out_dir: str | Path, key_file: str | Path) -> dict[str, int]:
    """Hash the identifier columns of every contract file in raw_dir into out_dir (same format)."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    key = read_key(key_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = store.connect()
    rows: dict[str, int] = {}
    try:
        for stem, id_cols in PSEUDONYMISED.items():
            for suffix in (".parquet", ".csv"):
                src = raw_dir / f"{stem}{suffix}"
                if not src.exists():
                    continue
                reader = _reader(suffix)
                try:
                    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", {"src": str(src)}).fetchall()]
                except duckdb.Error as e:
                    raise unreadable(src, e) from None
                _only_contract_columns(src, stem, cols)
                select = ", ".join(f"{sql_pseudonym(c, len(key))} AS {quote(c)}" if c in id_cols else quote(c) for c in cols)
                dst = out_dir / src.name
                fmt = "(FORMAT parquet, COMPRESSION zstd)" if suffix == ".parquet" else "(FORMAT csv, HEADER true)"
                params = {"src": str(src), "dst": str(dst)} | (pad_params(key) if any(c in id_cols for c in cols) else {})
                try:
                    con.execute(f"COPY (SELECT {select} FROM {reader}) TO $dst {fmt}", params)
                    rows[dst.name] = con.execute(f"SELECT count(*) FROM {reader}", {"src": str(src)}).fetchone()[0]
                except duckdb.Error as e:
                    dst.unlink(missing_ok=True)  # no half-written file beside the good ones
                    raise unreadable(src, e) from None
    finally:
        con.close()
    (out_dir / "manifest.json").unlink(missing_ok=True)  # an earlier run's would describe other files
    manifest = raw_dir / "manifest.json"
    if manifest.exists():
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            m = e
        if not isinstance(m, dict):
            raise ValueError(f"{manifest}: not a manifest (a JSON object with bank_id and period_start/end); none written")
        write_manifest(out_dir, m.get("bank_id"), m.get("period_start"), m.get("period_end"), rows, key_id(key))
    else:
        found = manifest_from_data(out_dir, rows)
        if found:
            write_manifest(out_dir, *found, rows, key_id(key))
    return rows


def manifest_from_data(out_dir: Path, rows: dict[str, int]) -> tuple[str, str, str] | None:
    """(bank_id, first day, last day) of a pseudonymised extract whose raw folder had no manifest: its one bank and the
    Dutch calendar days of its first and last booking, as a bank would write them. None when the files hold several
    banks or no readable booking time: the bank then writes the manifest itself (docs/contract.md)."""
    tx = [out_dir / n for n in rows if n.startswith("transactions.")]
    if not tx:
        return None
    reader = _reader(tx[0].suffix)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # a time without an offset is UTC, as the contract and the validator read it
    try:
        banks, first, last = con.execute(
            f"""SELECT list(DISTINCT CAST(bank_id AS VARCHAR)),
                       min(CAST(timezone('Europe/Amsterdam', TRY_CAST(booked_at AS TIMESTAMPTZ)) AS DATE)),
                       max(CAST(timezone('Europe/Amsterdam', TRY_CAST(booked_at AS TIMESTAMPTZ)) AS DATE))
                FROM {reader}""",
            {"src": str(tx[0])},
        ).fetchall()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()
    if len(banks or []) != 1 or banks[0] is None or first is None:
        return None
    return banks[0], first.isoformat(), last.isoformat()
