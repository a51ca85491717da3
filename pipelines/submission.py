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

MANIFEST_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "manifest.schema.json"


class SubmissionRejected(Exception):
    """A fault that makes the whole submission unusable. Names the file and the fault."""

    def __init__(self, file: str, fault: str, detail: str):
        self.file, self.fault, self.detail = file, fault, detail
        super().__init__(f"{file}: {fault}: {detail}")


@dataclass
class Submission:
    path: Path
    files: dict[str, Path]  # contract file name -> path on disk
    manifest: dict | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    fiu: bool = False

    @property
    def bank_id(self) -> str | None:
        return (self.manifest or {}).get("bank_id")

    @property
    def period(self) -> tuple[date, date] | None:
        m = self.manifest or {}
        if m.get("period_start") and m.get("period_end"):  # checked against the manifest schema on open
            return date.fromisoformat(m["period_start"]), date.fromisoformat(m["period_end"])
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


def _field(path) -> str:
    return ".".join(str(p) for p in path) or "(the whole manifest)"


def _schema_reason(e) -> str:
    """Why a manifest field fails, in words, without echoing the submitted value."""
    v = e.validator_value
    if e.validator == "type":
        return f"must be of type {v if isinstance(v, str) else ' or '.join(v)}"
    if e.validator == "required":
        return e.message.replace("is a required property", "is required")
    if e.validator == "pattern":
        return f"must match {v}"
    if e.validator == "format":
        return f"must be a valid {v} (YYYY-MM-DD)"
    if e.validator in ("minimum", "minProperties"):
        return f"must be at least {v}" + (" entry" if e.validator == "minProperties" else "")
    if e.validator == "const":
        return f"must be {v!r}"
    return e.message[:200]


def check_manifest(manifest: object) -> None:
    """Validate a parsed manifest against schemas/manifest.schema.json; raise naming the field and the reason."""
    import jsonschema

    schema = json.loads(MANIFEST_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    if isinstance(manifest, dict) and "contract" in manifest and manifest["contract"] != CONTRACT_VERSION:
        raise SubmissionRejected(
            "manifest.json",
            "wrong contract version",
            f"contract is {str(manifest['contract'])[:20]!r}; this loader reads version {CONTRACT_VERSION}",
        )
    errors = sorted(validator.iter_errors(manifest), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        e = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        if e.parent is not None and e.parent.validator == "propertyNames":
            raise SubmissionRejected(
                "manifest.json",
                "invalid manifest",
                f"field {_field(e.absolute_path)}: {str(e.instance)[:60]!r} is not a contract file name "
                "(transactions or accounts, .csv or .parquet)",
            )
        raise SubmissionRejected(
            "manifest.json",
            "invalid manifest",
            f"field {_field(e.absolute_path)}: {_schema_reason(e)}"
            + (f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""),
        )
    if manifest["period_start"] > manifest["period_end"]:
        raise SubmissionRejected(
            "manifest.json",
            "invalid manifest",
            f"field period_end: {manifest['period_end']} is before period_start {manifest['period_start']}",
        )


def open_submission(folder: str | Path, require_manifest: bool = False) -> Submission:
    """Find the contract files, read and check the manifest, hash the files; raise on file-level faults.
    `require_manifest`: a folder without manifest.json is refused (the command line's default)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionRejected(str(folder), "not a folder", "a submission is a folder with transactions and accounts files")
    links = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    if links:  # a link could make the loader read (and hash, and store) any file on this machine
        raise SubmissionRejected(
            links[0], "symbolic link", "a submission may hold only plain files; copy the file in instead of linking it"
        )
    files: dict[str, Path] = {}
    for stem in ("transactions", "accounts"):
        p = _find(folder, stem)
        if p is not None:
            files[stem] = p
    if "transactions" not in files:
        raise SubmissionRejected("transactions.parquet|csv", "missing file", f"no transactions file in {folder}")
    for name, p in files.items():
        if not p.is_file():
            raise SubmissionRejected(p.name, "not a file", "must be a plain file")
        if p.stat().st_size == 0:
            raise SubmissionRejected(p.name, "empty file", "the file has no bytes")
    manifest = None
    mpath = folder / "manifest.json"
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SubmissionRejected("manifest.json", "unreadable manifest", str(e)) from e
        except RecursionError:
            raise SubmissionRejected("manifest.json", "unreadable manifest", "nested too deeply") from None
        check_manifest(manifest)
    elif require_manifest:
        raise SubmissionRejected(
            "manifest.json",
            "missing manifest",
            f"no manifest.json in {folder}; it names the bank, the period and each file's rows and sha256 "
            "(give --no-manifest to accept a submission without one)",
        )
    sub = Submission(folder, files, manifest)
    sub.sha256 = {p.name: file_sha256(p) for p in files.values()}
    if manifest is not None:
        for name, meta in manifest["files"].items():
            if name not in sub.sha256:
                raise SubmissionRejected(name, "missing file", "listed in manifest.json but not in the folder")
            want = meta["sha256"]
            if want.lower() != sub.sha256[name]:
                raise SubmissionRejected(
                    name,
                    "sha256 mismatch",
                    f"manifest says {want[:12]}…, file is {sub.sha256[name][:12]}… (file changed or truncated in transit)",
                )
        unlisted = sorted(set(sub.sha256) - set(manifest["files"]))
        if unlisted:
            raise SubmissionRejected(
                unlisted[0], "not in manifest", "the file is in the folder but manifest.json does not list it"
            )
    return sub


def manifest_rows(sub: Submission, name: str) -> int | None:
    meta = ((sub.manifest or {}).get("files") or {}).get(name) or {}
    rows = meta.get("rows")
    return int(rows) if rows is not None else None


def write_manifest(
    folder: Path, bank_id: str, period_start: str, period_end: str, rows: dict[str, int], key_id: str | None = None
) -> dict:
    """The manifest a submitter writes next to its files (used by the generator and pseudonymiser)."""
    files = {p.name: {"rows": rows[p.name], "sha256": file_sha256(p)} for p in sorted(folder.iterdir()) if p.name in rows}
    m = {"contract": CONTRACT_VERSION, "bank_id": bank_id, "period_start": period_start, "period_end": period_end, "files": files}
    if key_id:
        m["key_id"] = key_id  # which pseudonymisation key made the ids (pipelines/pseudonymise.key_id)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    return m
