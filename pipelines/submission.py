"""A submission folder on disk: which files it has, its manifest, and file-level faults.

A file-level fault rejects the whole submission (nothing is loaded); it always names the file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from schemas.contract import CONTRACT_VERSION


class SubmissionRejected(Exception):
    """A fault that makes the whole submission unusable. Names the file and the fault."""

    def __init__(self, file: str, fault: str, detail: str):
        self.file, self.fault, self.detail = file, fault, detail
        super().__init__(f"{file}: {fault}: {detail}")


@dataclass
class Submission:
    path: Path
    files: dict[str, Path]                 # contract file name -> path on disk
    manifest: dict | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    fiu: bool = False

    @property
    def bank_id(self) -> str | None:
        return (self.manifest or {}).get("bank_id")

    @property
    def period(self) -> tuple[date, date] | None:
        m = self.manifest or {}
        if m.get("period_start") and m.get("period_end"):
            return date.fromisoformat(str(m["period_start"])[:10]), date.fromisoformat(str(m["period_end"])[:10])
        return None

    @property
    def fingerprint(self) -> str:
        """One hash over the data files' hashes: the same files give the same fingerprint."""
        joined = "|".join(f"{k}:{v}" for k, v in sorted(self.sha256.items()) if k != "manifest.json")
        return hashlib.sha256(joined.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    found = [p for p in (folder / f"{stem}.parquet", folder / f"{stem}.csv") if p.exists()]
    if len(found) > 1:
        raise SubmissionRejected(found[0].name, "ambiguous file", f"both {stem}.parquet and {stem}.csv are present; submit one")
    return found[0] if found else None


def open_submission(folder: str | Path) -> Submission:
    """Find the contract files, read the manifest, hash the files; raise on file-level faults."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionRejected(str(folder), "not a folder", "a submission is a folder with transactions and accounts files")
    files: dict[str, Path] = {}
    for stem in ("transactions", "accounts"):
        p = _find(folder, stem)
        if p is not None:
            files[stem] = p
    if "transactions" not in files:
        raise SubmissionRejected("transactions.parquet|csv", "missing file", f"no transactions file in {folder}")
    for name, p in files.items():
        if p.stat().st_size == 0:
            raise SubmissionRejected(p.name, "empty file", "the file has no bytes")
    manifest = None
    mpath = folder / "manifest.json"
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SubmissionRejected("manifest.json", "unreadable manifest", str(e)) from e
        if not isinstance(manifest, dict):
            raise SubmissionRejected("manifest.json", "unreadable manifest", "must be a JSON object")
        if manifest.get("contract") != CONTRACT_VERSION:
            raise SubmissionRejected("manifest.json", "wrong contract version",
                                     f"contract is {manifest.get('contract')!r}; this loader reads version {CONTRACT_VERSION}")
        for key in ("period_start", "period_end"):
            if key in manifest:
                try:
                    date.fromisoformat(str(manifest[key])[:10])
                except ValueError as e:
                    raise SubmissionRejected("manifest.json", f"bad {key}", f"{manifest[key]!r} is not a date") from e
    sub = Submission(folder, files, manifest)
    sub.sha256 = {p.name: file_sha256(p) for p in files.values()}
    if manifest is not None:
        listed = manifest.get("files") or {}
        for name, meta in listed.items():
            if name not in sub.sha256:
                raise SubmissionRejected(name, "missing file", "listed in manifest.json but not in the folder")
            want = (meta or {}).get("sha256")
            if want and want.lower() != sub.sha256[name]:
                raise SubmissionRejected(name, "sha256 mismatch",
                                         f"manifest says {want[:12]}…, file is {sub.sha256[name][:12]}… (file changed or truncated in transit)")
    return sub


def manifest_rows(sub: Submission, name: str) -> int | None:
    meta = ((sub.manifest or {}).get("files") or {}).get(name) or {}
    rows = meta.get("rows")
    return int(rows) if rows is not None else None


def write_manifest(folder: Path, bank_id: str, period_start: str, period_end: str, rows: dict[str, int]) -> dict:
    """The manifest a submitter writes next to its files (used by the generator and pseudonymiser)."""
    files = {p.name: {"rows": rows[p.name], "sha256": file_sha256(p)}
             for p in sorted(folder.iterdir()) if p.name in rows}
    m = {"contract": CONTRACT_VERSION, "bank_id": bank_id, "period_start": period_start,
         "period_end": period_end, "files": files}
    (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    return m
