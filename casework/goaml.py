"""FIU reports: escalated alerts exported as goAML XML (schema 5.0.2), validated before they exist.

The store holds pseudonymous ids only; the bank re-identifies. `--identities` is the bank's own
file (CSV or Parquet) with one row per pseudonymous id (`pseudonymous_id`) and goAML's field names
as columns:
- accounts (the alerted account and counterparty accounts): account (number or IBAN), account_name,
  balance, date_balance, status_code, personal_account_type; optional iban, swift (counterparty
  bank), branch, currency_code, signatory_id (the person who signs for a business account);
- persons (account holders, by customer id): first_name, last_name, gender, birthdate,
  passport_number, passport_country, id_number, nationality1, residence, phone, id_type,
  id_issue_date, id_expiry_date, id_issue_country, tax_reg_number; optional address, city, zip,
  country_code, state, occupation.
Where the store already knows a field (account opened date, gender, nationality) it is used when the
file leaves it out. A report that would miss a field goAML requires is not written: the error lists
the missing fields per alert and party. Every report is validated against the schema in memory; an
invalid one is an error, never a file. Written reports are recorded on the alert (status reported,
when, file) and in the audit log. Reports hold real identities: they are written with mode 0600 and
nothing here prints them.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import yaml
from lxml import etree

from casework import victims
from casework.access_log import log_access
from casework.dispositions import LATEST_ALERTS, audit, mark_reported
from casework.identities import IdentitiesError, read_identities
from casework.view import reading
from detectors.rules import RULES
from pipelines import snapshot
from pipelines.casework_db import open_casework
from schemas import typologies

REPO = Path(__file__).resolve().parent.parent
MAPPING = REPO / "schemas" / "goaml_indicators.yaml"
# The FIU's published schema ships with the tool (a copy of ../shared/goaml/, checked equal by a test);
# THB_GOAML_XSD points at another FIU's version.
XSD = Path(os.environ.get("THB_GOAML_XSD") or REPO / "schemas" / "goaml" / "goAMLSchema-5.0.2.xsd")
AMS = ZoneInfo("Europe/Amsterdam")
ENTITY_FIELDS = ("rentity_id", "institution_name", "swift", "branch", "reporting_user_code")
ACCOUNT_FIELDS = ("account", "account_name", "balance", "date_balance", "status_code", "personal_account_type")
PERSON_FIELDS = (
    "first_name",
    "last_name",
    "gender",
    "birthdate",
    "passport_number",
    "passport_country",
    "id_number",
    "nationality1",
    "residence",
    "phone",
    "id_type",
    "id_issue_date",
    "id_expiry_date",
    "id_issue_country",
    "tax_reg_number",
)
COUNTERPARTY_FIELDS = ("account", "account_name", "swift", "balance", "status_code")


class ExportError(ValueError):
    pass


EXAMPLE_CONFIG = REPO / "detectors" / "config.example.yaml"


def check_entity(entity: dict | None) -> dict:
    """The reporting entity, or one clear line: every report names the bank that files it, so the export never falls back
    to a placeholder (the example config's entity is one: it is refused like a missing one)."""
    entity = entity or {}
    gone = [f for f in ENTITY_FIELDS if not _has(entity, f)]
    if gone:
        raise ExportError(
            f"goAML export needs the bank's reporting entity: set goaml: {', '.join(gone)} in --config (see detectors/config.example.yaml)"
        )
    example = {}
    if EXAMPLE_CONFIG.exists():
        example = (yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8")) or {}).get("goaml") or {}
    same_id = str(entity["rentity_id"]) == str(example.get("rentity_id"))
    if example and (same_id or entity["institution_name"] == example.get("institution_name")):
        raise ExportError(
            f"goAML export refuses the example reporting entity ({example.get('institution_name')}, id {example.get('rentity_id')}): "
            "set the bank's own goaml: section in --config"
        )
    return entity


@dataclass
class Missing:
    """Required fields the identities file (or config) leaves out, per alert and party."""

    by_alert: dict = field(default_factory=dict)

    def need(self, alert_id: str, party: str, row: dict | None, fields: tuple[str, ...]) -> None:
        gone = [f for f in fields if not _has(row, f)]
        if gone:
            listed = self.by_alert.setdefault(alert_id, {}).setdefault(party, [])
            listed.extend(f for f in gone if f not in listed)

    def message(self) -> str:
        lines = []
        for alert, parties in self.by_alert.items():
            lines.append(f"alert {alert}: " + "; ".join(f"{p} lacks {', '.join(f)}" for p, f in parties.items()))
        return "\n".join(lines)


def _has(row: dict | None, f: str) -> bool:
    return bool(row) and row.get(f) is not None and str(row.get(f)).strip() != ""


def load_mapping(path: str | Path | None = None) -> dict:
    return yaml.safe_load(Path(path or MAPPING).read_text(encoding="utf-8"))


def load_identities(path: str | Path) -> dict[str, dict]:
    """The bank's identities by pseudonymous id (casework/identities.py reads them), with nothing XML cannot hold."""
    try:
        df = read_identities(path)
    except IdentitiesError as e:
        raise ExportError(str(e)) from None
    for col in df.columns:  # XML takes no control characters: lxml's refusal named neither the row nor the column
        bad = df[col].str.contains(r"[\x00-\x08\x0b\x0c\x0e-\x1f]").fill_null(False)
        if bad.any():
            raise ExportError(
                f"{Path(path)}: data row {int(bad.arg_max()) + 1}, column {col}: a control character, which XML cannot hold"
            )
    return {r["pseudonymous_id"]: r for r in df.iter_rows(named=True)}


def indicator_codes(rule_ids: list[str], mapping: dict) -> list[str]:
    """goAML indicator codes for the rules that fired, through the editable mapping file."""
    ours = [i for r in RULES if r.id in set(rule_ids) for i in r.indicators]
    codes = list(mapping.get("always", []))
    for i in ours:
        for c in mapping.get("indicators", {}).get(i, []):
            if c not in codes:
                codes.append(c)
    return codes


def escalated_by(cw, alert_ids: list[str]) -> list[str]:
    """Who escalated these alerts, from the audit log in the casework database (the latest escalation of each): the
    report names the investigator who decided, not whoever runs the export."""
    return cw.escalators(alert_ids)


def _name(s: str) -> str:
    """goAML name fields allow [a-zA-Z0-9 .'-] only: transliterate accents, drop the rest."""
    s = unicodedata.normalize("NFKD", str(s)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-zA-Z0-9 .'-]", "", s).strip()[:255]


def _dt(v) -> str:
    """goAML sql_date: local date-time without offset."""
    if isinstance(v, datetime):
        return (v.astimezone(AMS) if v.tzinfo else v).strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(v, date):
        return f"{v.isoformat()}T00:00:00"
    s = str(v).strip()
    return s if "T" in s else f"{s[:10]}T00:00:00"


def _amount(v) -> str:
    return f"{float(v):.2f}"


def _sub(parent, tag: str, text=None):
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


class GoamlExporter:
    """Builds, validates and writes goAML reports for escalated alerts or cases."""

    def __init__(
        self,
        db_path: str | Path,
        identities: str | Path,
        entity: dict,
        mapping: dict | None = None,
        xsd: str | Path | None = None,
        casework_url: str | None = None,
    ):
        self.db_path = str(db_path)
        self.entity = check_entity(entity)
        self.cw = open_casework(db_path, casework_url)  # reports are marked there; alerts are read from the snapshot
        self.ids = load_identities(identities)
        self.mapping = mapping or load_mapping()
        self.schema = etree.XMLSchema(etree.parse(str(xsd or XSD)))

    # ------------------------------------------------------------------ selection
    def _alerts(self, con, where: str, params: list) -> pl.DataFrame:
        return con.sql(
            f"""
            WITH latest AS ({LATEST_ALERTS})
            SELECT l.alert_id, l.bank_id, l.account_id, l.score, l.typology, l.reasons, l.rules, l.evidence, l.case_id, l.case_role,
                   s.status, a.customer_id, a.customer_type, a.gender, a.nationality, a.opened_on
            FROM latest l JOIN alert_status s USING (alert_id)
            JOIN accounts a ON a.bank_id = l.bank_id AND a.account_id = l.account_id
            WHERE {where} ORDER BY l.case_id, l.score DESC""",
            params=params,
        ).pl()

    def select(
        self, con, alert: str | None = None, case: str | None = None, escalated: bool = False, bank: str | None = None
    ) -> list[pl.DataFrame]:
        """The alerts of each report to write: one alert, one case (its escalated accounts; only `bank`'s when given: a bank
        reports its own customers), or every escalated alert (one report each)."""
        if alert:
            a = self._alerts(con, "l.alert_id = ?", [alert])
            if a.height == 0:
                raise ExportError(f"no alert {alert}")
            groups = [a]
        elif case:
            a = self._alerts(con, "l.case_id = ?", [case])
            if a.height == 0:
                raise ExportError(f"no case {case}")
            mine = a.filter((pl.col("bank_id") == bank) if bank else pl.lit(True))
            a = mine.filter(pl.col("status") == "escalated")
            if a.height == 0:
                done = mine.filter(pl.col("status") == "reported").height
                raise ExportError(
                    f"case {case} has no escalated alert"
                    + (f" left to report: {done} of its alerts are already reported" if done else "")
                )
            groups = [a]
        elif escalated:
            a = self._alerts(con, "s.status = 'escalated'", [])
            groups = [a.filter(pl.col("alert_id") == i) for i in a["alert_id"].to_list()]
        else:
            raise ExportError("say which: --alert ID, --case ID or --escalated")
        for g in groups:
            bad = g.filter(pl.col("status") != "escalated")
            if bad.height:
                raise ExportError(f"alert {bad['alert_id'][0]} is {bad['status'][0]}: only escalated alerts are reported")
        return groups

    # ------------------------------------------------------------------ building
    def case_name(self, case_id: str | None, bank: str | None) -> str | None:
        """A case as this report names it: its id, or when a bank reports, as the bank's people name it (the id names
        the case's oldest alert, which may be another bank's)."""
        return case_id if not case_id or bank is None else self.cw.case_ref(case_id)

    def ref(self, group: pl.DataFrame, bank: str | None) -> str:
        """What a report is named by: its alert, or its case."""
        return group["alert_id"][0] if group.height == 1 else self.case_name(group["case_id"][0], bank)

    def build(self, con, group: pl.DataFrame, user: str, bank: str | None = None) -> tuple[etree._Element, Missing]:
        """The report of one group of alerts; `bank`: the bank reporting (it names the case as its people do)."""
        missing = Missing()
        ref = self.ref(group, bank)
        missing.need(ref, "reporting entity (config goaml:)", self.entity, ENTITY_FIELDS)
        root = etree.Element("report")
        _sub(root, "rentity_id", self.entity.get("rentity_id"))
        if self.entity.get("rentity_branch"):
            _sub(root, "rentity_branch", self.entity["rentity_branch"])
        _sub(root, "submission_code", self.mapping.get("submission_code", "E"))
        _sub(root, "report_code", self.mapping.get("report_code", "STR"))
        _sub(root, "entity_reference", ref)
        _sub(root, "submission_date", _dt(datetime.now(timezone.utc)))
        _sub(root, "currency_code_local", self.mapping.get("currency_code_local", "EUR"))
        _sub(root, "reporting_user_code", self.entity.get("reporting_user_code") or user)
        _sub(root, "reason", self.reason(group, escalated_by(self.cw, group["alert_id"].to_list()), bank))
        _sub(root, "action", "Escalated after review of an automated alert; evidence transactions listed below.")
        subjects = {r["account_id"]: r for r in group.iter_rows(named=True)}
        evidence = [t for r in group.iter_rows(named=True) for t in (r["evidence"] or [])]
        txns = (
            con.sql("""SELECT * FROM transactions WHERE list_contains(?, txn_id) ORDER BY booked_at""", params=[evidence]).pl()
            if evidence
            else pl.DataFrame()
        )
        in_case = self._case_accounts(con, group)
        for t in txns.iter_rows(named=True):
            subject = subjects.get(t["account_id"])
            if subject is None:
                continue
            if victims.is_victim(subject):  # only what the report needs: no free text, no private person outside the case
                t = {**t, "description": None}
                if t["counterparty_type"] == "person" and t["counterparty_id"] not in in_case:
                    t = {**t, "counterparty_id": None, "counterparty_type": "protected", "counterparty_name": "private person"}
            self._transaction(root, t, subject, missing)
        if not txns.height:
            missing.need(ref, "alert", {}, ("evidence transactions",))
        codes = indicator_codes([r for g in group["rules"].to_list() for r in (g or [])], self.mapping)
        ind = _sub(root, "report_indicators")
        for c in codes:
            _sub(ind, "indicator", c)
        return root, missing

    @staticmethod
    def _case_accounts(con, group: pl.DataFrame) -> set[str]:
        """The alerted accounts of the group's cases: a victim's counterparties the report may name."""
        cases = [c for c in group["case_id"].unique().to_list() if c]
        if not cases:
            return set(group["account_id"].to_list())
        rows = con.execute("SELECT DISTINCT account_id FROM alerts WHERE list_contains(?, case_id)", [cases]).fetchall()
        return {r[0] for r in rows} | set(group["account_id"].to_list())

    def reason(self, group: pl.DataFrame, escalators: list[str], bank: str | None = None) -> str:
        """The explanation FIU-Nederland needs for a subjective-indicator report, in plain words."""
        words = (
            self.mapping.get("typology_words") or {}
        )  # the mapping file may reword a typology; schemas/typologies.py by default
        parts = []
        for r in group.iter_rows(named=True):
            role = f" Its role in the case: likely {r['case_role']}." if r["case_role"] and r["case_role"] != "linked" else ""
            grounds = (
                r["reasons"]
                if not r["case_id"]
                else (r["reasons"] or "").replace(r["case_id"], self.case_name(r["case_id"], bank))
            )
            victim = (
                (
                    " The holder is assessed as a likely victim, not as a perpetrator; the report is made to"
                    " protect them and to reach those who exploit them."
                )
                if r["case_role"] in ("victim", "mule")
                else ""
            )
            parts.append(
                f"Account {r['account_id'][:12]} (alert {r['alert_id']}, score {r['score']:.2f}) shows signs of "
                f"{words.get(r['typology']) or typologies.words(r['typology'])}.{role}{victim} Grounds: {grounds}."
            )
        head = (
            f"Unusual transactions pointing to human trafficking, found by the bank's transaction monitoring "
            f"(thb-signals), reviewed and escalated by {' and '.join(escalators) or 'an investigator'}."
        )
        if group.height > 1:
            head += (
                f" The {group.height} accounts below are linked by money or shared details"
                f" (case {self.case_name(group['case_id'][0], bank)})."
            )
        return (head + " " + " ".join(parts))[:8000]

    def _account_my_client(self, parent, tag: str, subject: dict, alert: str, missing: Missing) -> None:
        acc = self.ids.get(subject["account_id"], {})
        missing.need(alert, f"account {subject['account_id'][:8]}", acc, ACCOUNT_FIELDS)
        signatory_id = acc.get("signatory_id") if subject["customer_type"] == "business" else subject["customer_id"]
        person = self._person(subject, signatory_id)
        if subject["customer_type"] == "business" and not signatory_id:
            missing.need(alert, f"account {subject['account_id'][:8]}", acc, ("signatory_id",))
        missing.need(alert, f"holder {str(signatory_id or '')[:8]}", person, PERSON_FIELDS)
        a = _sub(parent, tag)
        _sub(a, "institution_name", self.entity.get("institution_name"))
        _sub(a, "swift", self.entity.get("swift"))
        _sub(a, "non_bank_institution", "false")
        _sub(a, "branch", acc.get("branch") or self.entity.get("branch"))
        _sub(a, "account", acc.get("account"))
        _sub(a, "currency_code", acc.get("currency_code") or self.mapping.get("currency_code_local", "EUR"))
        _sub(a, "account_name", _name(acc.get("account_name") or ""))
        if acc.get("iban"):
            _sub(a, "iban", acc["iban"])
        _sub(a, "personal_account_type", acc.get("personal_account_type"))
        sig = _sub(a, "signatory")
        _sub(sig, "is_primary", "1")  # this schema fixes the value to 1
        self._person_my_client(sig, "t_person", person)
        _sub(sig, "role", acc.get("signatory_role") or ("PAH" if subject["customer_type"] == "person" else "AGENT"))
        _sub(a, "opened", _dt(acc.get("opened") or subject["opened_on"]))
        _sub(a, "balance", _amount(acc["balance"]) if _has(acc, "balance") else None)
        _sub(a, "date_balance", _dt(acc["date_balance"]) if _has(acc, "date_balance") else None)
        _sub(a, "status_code", acc.get("status_code"))
        _sub(a, "beneficiary", _name(acc.get("beneficiary") or acc.get("account_name") or "")[:50])

    def _person(self, subject: dict, person_id: str | None) -> dict:
        """A person's identity fields: the identities file's row over what the store knows (gender, nationality)."""
        known = {"gender": (subject["gender"] or "").upper() or None, "nationality1": subject["nationality"]}
        return {**known, **{k: v for k, v in self.ids.get(person_id or "", {}).items() if v not in (None, "")}}

    def _person_my_client(self, parent, tag: str, p: dict) -> None:
        el = _sub(parent, tag)
        _sub(el, "gender", p.get("gender"))
        _sub(el, "first_name", _name(p.get("first_name") or ""))
        _sub(el, "last_name", _name(p.get("last_name") or ""))
        _sub(el, "birthdate", _dt(p["birthdate"]) if _has(p, "birthdate") else None)
        _sub(el, "passport_number", p.get("passport_number"))
        _sub(el, "passport_country", p.get("passport_country"))
        _sub(el, "id_number", p.get("id_number"))
        _sub(el, "nationality1", p.get("nationality1"))
        _sub(el, "residence", p.get("residence"))
        phones = _sub(el, "phones")
        ph = _sub(phones, "phone")
        _sub(ph, "tph_contact_type", "PRIVT")
        _sub(ph, "tph_communication_type", "M")
        _sub(ph, "tph_number", p.get("phone"))
        if _has(p, "address") and _has(p, "city"):
            ad = _sub(_sub(el, "addresses"), "address")
            _sub(ad, "address_type", "PRIVT")
            _sub(ad, "address", str(p["address"])[:100])
            _sub(ad, "city", p["city"])
            if _has(p, "zip"):
                _sub(ad, "zip", str(p["zip"])[:10])
            _sub(ad, "country_code", p.get("country_code") or p.get("residence"))
            _sub(ad, "state", p.get("state") or "-")
        if _has(p, "occupation"):
            _sub(el, "occupation", p["occupation"])
        ident = _sub(el, "identification")
        _sub(ident, "type", p.get("id_type"))
        _sub(ident, "number", p.get("id_number"))
        _sub(ident, "issue_date", _dt(p["id_issue_date"]) if _has(p, "id_issue_date") else None)
        _sub(ident, "expiry_date", _dt(p["id_expiry_date"]) if _has(p, "id_expiry_date") else None)
        _sub(ident, "issue_country", p.get("id_issue_country"))
        _sub(el, "tax_reg_number", p.get("tax_reg_number"))

    def _counterparty(self, parent, side: str, t: dict, alert: str, missing: Missing) -> None:
        """The other party of a booking: a known account, a business by name, or (cash) nobody."""
        cp = t["counterparty_id"]
        row = self.ids.get(cp) if cp else None
        if row is not None or (cp and t["counterparty_type"] == "person"):
            missing.need(alert, f"counterparty account {str(cp)[:8]}", row, COUNTERPARTY_FIELDS)
            row = row or {}
            a = _sub(parent, f"{side}_account")
            _sub(a, "swift", row.get("swift"))
            _sub(a, "account", row.get("account"))
            _sub(a, "account_name", _name(row.get("account_name") or ""))
            if row.get("iban"):
                _sub(a, "iban", row["iban"])
            _sub(a, "balance", _amount(row["balance"]) if _has(row, "balance") else None)
            _sub(a, "status_code", row.get("status_code"))
        else:
            e = _sub(parent, f"{side}_entity")
            _sub(e, "name", _name(t["counterparty_name"] or t["channel"]) or "unknown")
            _sub(e, "entity_status", "-")

    def _transaction(self, root, t: dict, subject: dict, missing: Missing) -> None:
        ch = self.mapping["channels"].get(t["channel"], self.mapping["channels"]["other"])
        x = _sub(root, "transaction")
        _sub(x, "transactionnumber", t["txn_id"])
        _sub(x, "internal_ref_number", subject["alert_id"][:100])
        _sub(x, "transaction_location", t["location_city"] or "")
        _sub(x, "transaction_description", (t["description"] or t["counterparty_name"] or t["channel"])[:8000])
        _sub(x, "date_transaction", _dt(t["booked_at"]))
        _sub(x, "transmode_code", ch["transmode"])
        _sub(x, "transmode_comment", "-")
        _sub(x, "amount_local", _amount(t["amount_eur"]))
        cash = t["channel"] in ("cash_deposit", "cash_withdrawal")
        debit = t["direction"] == "debit"
        alert = subject["alert_id"]
        for side in ("from", "to"):
            mine = (side == "from") == debit  # the subject's own account is on this side
            wrap = _sub(x, f"t_{side}_my_client" if (mine or cash) else f"t_{side}")
            _sub(wrap, f"{side}_funds_code", ch["funds"])
            if t["currency"] and t["currency"] != "EUR" and t["amount_orig"] is not None:
                fc = _sub(wrap, f"{side}_foreign_currency")
                _sub(fc, "foreign_currency_code", t["currency"])
                _sub(fc, "foreign_amount", _amount(t["amount_orig"]))
            if mine:
                self._account_my_client(wrap, f"{side}_account", subject, alert, missing)
            elif cash:  # cash: the holder hands it in or takes it out
                self._person_my_client(wrap, f"{side}_person", self._person(subject, subject["customer_id"]))
            else:
                self._counterparty(wrap, side, t, alert, missing)
            _sub(wrap, f"{side}_country", "NL" if (mine or cash) else (t["counterparty_country"] or "NL"))

    # ------------------------------------------------------------------ writing
    def export(
        self,
        out_dir: str | Path,
        user: str,
        alert: str | None = None,
        case: str | None = None,
        escalated: bool = False,
        role: str = "operator",
        address: str | None = None,
        bank: str | None = None,
    ) -> tuple[list[Path], list[str]]:
        """Write every selected report that is complete and valid; returns (files written, reports refused and why)."""
        out_dir = Path(out_dir)
        written, problems = [], []
        snapshot.ensure(self.db_path)
        with reading(self.db_path, self.cw) as con:
            for group in self.select(con, alert, case, escalated, bank):
                root, missing = self.build(con, group, user, bank)
                if missing.by_alert:
                    problems.append(missing.message())
                    continue
                if not self.schema.validate(root):
                    problems.append(self._invalid(group, self.schema.error_log))
                    continue
                out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                path = out_dir / f"goaml-{self.ref(group, bank)}.xml"
                data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                for a, alert_bank in group.select("alert_id", "bank_id").iter_rows():
                    mark_reported(self.cw, a, user, path.name, {"indicators": [i.text for i in root.iter("indicator")]})
                    log_access(self.cw, user, role, "export", "report", a, alert_bank, address, path.name)
                written.append(path)
            if problems:
                audit(self.cw, user, "report_goaml_refused", note="\n".join(problems))
        return written, problems

    @staticmethod
    def _invalid(group: pl.DataFrame, log) -> str:
        errors = "; ".join(dict.fromkeys(e.message for e in log))
        return f"alert {group['alert_id'][0]}: the report does not validate against goAML 5.0.2: {errors}"
