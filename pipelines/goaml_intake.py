"""goAML intake: a folder of goAML 5.0.2 XML reports (as obliged entities file them) into `fiu_reports`.

Each report is validated against the schema with lxml first; one that fails is quarantined with the schema's own
message (file, line) and the others load. Every transaction becomes one report row in contract v1 form: the
reporting institution's own client account is `account_id`, the other side the counterparty, and every account number
is replaced by its keyed hash with the partners' key (pipelines/pseudonymise.py), so the same IBAN gets the same id as
in the banks' extracts and no raw number enters the store. Private persons' names are never stored, only a business
counterparty's name. The project's own export (casework/goaml.py) reads back as the transactions it was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml
from lxml import etree

from detectors.scoring import mask_identifiers
from pipelines import store
from pipelines.pseudonymise import key_id, pseudonym, read_key
from schemas import contract

REPO = Path(__file__).resolve().parent.parent
XSD = Path(os.environ.get("THB_GOAML_XSD") or REPO / "schemas" / "goaml" / "goAMLSchema-5.0.2.xsd")
MAPPING = REPO / "schemas" / "goaml_indicators.yaml"
COLUMNS = [c.name for c in contract.TRANSACTIONS + contract.FIU_EXTRA]


@dataclass
class GoamlIntake:
    submission_id: str
    loaded: int = 0
    reports: int = 0
    quarantined: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return (
            f"loaded {self.loaded} transactions from {self.reports} goAML reports; quarantined {len(self.quarantined)} report(s)"
        )


def is_goaml_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and any(p.glob("*.xml")) and not any(p.glob("transactions.*"))


def _channels() -> dict[tuple[str, str], str]:
    """(transmode, funds code) -> our channel; the first channel listed wins where two share a code pair."""
    out: dict[tuple[str, str], str] = {}
    for ch, m in yaml.safe_load(MAPPING.read_text(encoding="utf-8"))["channels"].items():
        out.setdefault((str(m["transmode"]), str(m["funds"])), ch)
    return out


def _text(el, path: str) -> str | None:
    x = el.find(path)
    return x.text.strip() if x is not None and x.text and x.text.strip() else None


def _account_number(acc) -> str | None:
    return _text(acc, "iban") or _text(acc, "account") if acc is not None else None


def _rows(doc, key: bytes, report_file: str, channels: dict) -> list[dict]:
    root = doc.getroot()
    rentity = _text(root, "rentity_id") or "unknown"
    report_id = _text(root, "entity_reference") or Path(report_file).stem
    indicators = [i.text for i in root.findall("report_indicators/indicator") if i.text]
    out = []
    for x in root.findall("transaction"):
        side = "from" if x.find("t_from_my_client/from_account") is not None else "to"
        other = "to" if side == "from" else "from"
        mine = x.find(f"t_{side}_my_client/{side}_account")
        if mine is None:
            continue  # no client account of the reporting institution in this transaction
        wrap = x.find(f"t_{other}_my_client")
        wrap = wrap if wrap is not None else x.find(f"t_{other}")
        cp_acc = wrap.find(f"{other}_account") if wrap is not None else None
        cp_ent = wrap.find(f"{other}_entity") if wrap is not None else None
        funds = _text(x, f"t_{side}_my_client/{side}_funds_code") or ""
        bank = (_text(mine, "non_bank_institution") or "false") == "false"
        cp_number = _account_number(cp_acc)
        out.append(
            {
                "txn_id": _text(x, "transactionnumber"),
                "bank_id": (f"BANK_{rentity}" if bank else rentity),
                "account_id": pseudonym(_account_number(mine) or "", key),
                "booked_at": _text(x, "date_transaction"),
                "direction": "debit" if side == "from" else "credit",
                "amount_eur": float(_text(x, "amount_local") or 0),
                "currency": _text(x, f"t_{side}_my_client/{side}_foreign_currency/foreign_currency_code"),
                "amount_orig": _text(x, f"t_{side}_my_client/{side}_foreign_currency/foreign_amount"),
                "channel": channels.get((_text(x, "transmode_code") or "-", funds), "other"),
                "counterparty_id": pseudonym(cp_number, key) if cp_number else None,
                "counterparty_type": "person"
                if cp_number and cp_acc.find("t_entity") is None
                else ("business" if cp_ent is not None or cp_acc is not None else None),
                "counterparty_name": _text(cp_ent, "name") if cp_ent is not None else None,
                "counterparty_country": _text(wrap, f"{other}_country") if wrap is not None else None,
                "mcc": None,
                "merchant_id": None,
                "location_city": _text(x, "transaction_location"),
                "description": _text(x, "transaction_description"),
                "device_id": None,
                "report_id": report_id,
                "reporting_entity": f"BANK_{rentity}" if bank else rentity,
                "indicator_code": "|".join(indicators) or None,
            }
        )
    return out


# No entity is expanded, no DTD or network read: a report is data, and an entity could rewrite its values.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def ingest_goaml(folder: str | Path, db_path: str | Path, key_file: str | Path) -> GoamlIntake:
    """Validate every *.xml in `folder`, quarantine the invalid ones, load the rest (same txn replaces)."""
    folder = Path(folder)
    key = read_key(key_file)
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    channels = _channels()
    found = sorted(folder.glob("*.xml"))
    files = [p for p in found if not p.is_symlink()]  # a link could make the intake read any file on this machine
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()
    res = GoamlIntake(f"{folder.name}-goaml-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
    rows = []
    quarantine = [(p.name, "a symbolic link: copy the report in instead of linking it") for p in found if p.is_symlink()]
    for p in files:
        try:
            doc = etree.parse(str(p), SAFE_PARSER)
        except etree.XMLSyntaxError as e:
            quarantine.append((p.name, f"not well-formed XML: {mask_identifiers(str(e))}"))
            continue
        if doc.docinfo.internalDTD is not None or doc.docinfo.doctype:
            quarantine.append((p.name, "a DOCTYPE: goAML reports declare none (entities in one could rewrite values)"))
            continue
        if not schema.validate(doc):
            err = schema.error_log.last_error
            quarantine.append((p.name, f"line {err.line}: {mask_identifiers(err.message)}"))  # it quotes the value
            continue
        rows += _rows(doc, key, p.name, channels)
        res.reports += 1
    res.quarantined = [f"{name}: {msg}" for name, msg in quarantine]
    con = store.connect(db_path)
    from pipelines.rekey import current_key_id

    ours = current_key_id(con)
    if ours and ours != key_id(key):  # ids under another key would link to nothing
        con.close()
        raise ValueError(f"{key_file}: key {key_id(key)} is not the store's current key {ours} (use the current key file)")
    try:
        con.execute("BEGIN TRANSACTION")
        if rows:
            df = (
                pl.DataFrame(
                    rows, schema_overrides={"amount_orig": pl.Utf8}, infer_schema_length=None
                )  # a column empty in the first 100 rows is still text
                .with_columns(
                    pl.col("booked_at")
                    .str.to_datetime(time_zone="Europe/Amsterdam", time_unit="us", ambiguous="earliest")
                    .dt.convert_time_zone("UTC"),
                    pl.col("amount_orig").cast(pl.Float64),
                )
                .select(COLUMNS)
            )
            con.register("goaml_df", df)
            con.execute("DELETE FROM fiu_reports WHERE (bank_id, txn_id) IN (SELECT (bank_id, txn_id) FROM goaml_df)")
            con.execute("INSERT INTO fiu_reports SELECT *, ? FROM goaml_df", [res.submission_id])
            con.unregister("goaml_df")
            res.loaded = df.height
        for name, msg in quarantine:
            con.execute(
                "INSERT INTO quarantine VALUES (?, ?, NULL, 'goaml.schema', NULL, ?, NULL, NULL, now())",
                [res.submission_id, name, msg[:2000]],
            )
        outcome = "loaded_with_quarantine" if quarantine else ("loaded" if rows else "rejected")
        con.execute(
            "INSERT INTO submissions VALUES (?, 'goAML', 'fiu_goaml', NULL, NULL, ?, ?, ?, ?, ?, ?, 0, now(), ?, ?, ?)",
            [
                res.submission_id,
                str(folder),
                json.dumps([p.name for p in files]),
                digest,
                json.dumps({"reports": len(files)}),
                res.loaded,
                len(quarantine),
                outcome,
                res.message,
                key_id(key),
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return res
