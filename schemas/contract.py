"""Extract contract version 1 as data.

This module is the single definition of what a submission may contain. The DuckDB row checks
(`pipelines.validation`), the Great Expectations suites (`schemas.gx_suite`), the arrow schemas
and the `thb-signals contract` documentation are all generated from the tables below, so they
cannot drift apart. docs/contract.md is the rendered reference (tests/test_docs.py keeps it current).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from schemas.codes import ISO_COUNTRIES, ISO_CURRENCIES

CONTRACT_VERSION = 1
PERIOD_TZ = "Europe/Amsterdam"  # manifest periods are Dutch calendar days
AMOUNT_STEP = 0.01  # amounts are stored as DECIMAL(18,2): a smaller positive amount would become 0.00

DIRECTIONS = ("credit", "debit")
CHANNELS = (
    "transfer",
    "instant_transfer",
    "card",
    "cash_deposit",
    "cash_withdrawal",
    "direct_debit",
    "money_remittance",
    "loan_disbursement",
    "wallet",
    "other",
)
COUNTERPARTY_TYPES = ("person", "business", "unknown")
CUSTOMER_TYPES = ("person", "business")
GENDERS = ("f", "m", "x")

# Textual formats a value must have (applied to the value as text, CSV or Parquet alike).
# Masking an IBAN-, e-mail- or phone-like string anywhere in free text (error messages, the review page, intake
# failures, decisions' notes), in Python re (ASCII) and DuckDB's RE2 alike: MASK_STEPS in order, then KEEP_MARK removed
# (detectors/scoring.py mask_identifiers, pipelines/validation.py masked_sql). IBANs and e-mail addresses go first; then
# the product's own formats are kept by breaking their digit runs with KEEP_MARK (days, 32-hex pseudonyms, the
# timestamps and suffixes of run, alert and submission ids, network addresses), which no pattern reads as a separator;
# then any run of 10 or more digits, spaces, dots, dashes and brackets, which is what a phone number written any way
# looks like, is masked, wherever it stands (tel0612345678, inside a lower-case IBAN, +1 (555) 123-4567). Masking a
# little too much is safe; too little is not.
KEEP_MARK = "\ue000"
_HEX4 = "([0-9a-f]{4})"
# what people write between a number's groups: a space (also a no-break, figure, thin, zero-width or narrow one), a dot
# or a dash
_SEP = "[ \u00a0\u2007\u2009\u200b\u202f.-]"
MASK_STEPS: tuple[tuple[str, str], ...] = (
    (
        rf"\b[A-Z]{{2}}[0-9]{{2}}(?:{_SEP}?[A-Z0-9]{{4}}){{2,7}}(?:{_SEP}?[A-Z0-9]{{1,4}})?\b"
        r"|[A-Za-z0-9_.+-]+@[A-Za-z0-9_-]+\.[A-Za-z0-9_.]+",
        "[masked]",
    ),
    # a day: 2026-09-01, also as the start of a time (2026-09-01T10:00), never followed by more digits
    (r"\b([0-9]{4})-([01][0-9])-([0-3][0-9])([^0-9]|$)", f"\\1-{KEEP_MARK}\\2-{KEEP_MARK}\\3\\4"),
    (r"\b" + _HEX4 * 8 + r"\b", KEEP_MARK.join(f"\\{i}" for i in range(1, 9))),  # a pseudonym: 32 hex digits
    (r"T([0-9]{6})-([0-9a-f]{6})-([0-9]{5})", f"T\\1-{KEEP_MARK}\\2-{KEEP_MARK}\\3"),  # run-20261202T043828-fd62b1-00001
    (r"T([0-9]{6})([0-9]+)", f"T\\1{KEEP_MARK}\\2{KEEP_MARK}"),  # BANK_A-20261202T043828163151, T000000009
    # a case as investigators name it: C- and 12 hex digits (casework_db.case_ref), which may all but two be digits
    (r"\bC-([0-9a-f]{6})([0-9a-f]{6})\b", f"C-\\1{KEEP_MARK}\\2"),
    # a network address in a URL or with a port (tcp://192.168.100.200:8786); a dotted phone number has neither
    (
        r"(://)([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})",
        f"\\1\\2.{KEEP_MARK}\\3.{KEEP_MARK}\\4.{KEEP_MARK}\\5",
    ),
    (
        r"\b([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3}):([0-9])",
        f"\\1.{KEEP_MARK}\\2.{KEEP_MARK}\\3.{KEEP_MARK}\\4:\\5",
    ),
    (r"\+?\(?[0-9][0-9()" + _SEP[1:-1] + "]{8,}[0-9]", "[masked]"),  # a phone number, or any long number
)
# the offset is a real one: -14:00 to +14:00 (an offset such as +99:00 was accepted and moved the booking by days)
RE_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?$"
RE_DATE = r"^\d{4}-\d{2}-\d{2}$"
RE_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
RE_INTEGER = r"^[+-]?\d+$"
RE_MCC = r"^\d{4}$"
RE_SECTOR = r"^\d{2}(\.?\d{1,3})?$"

# DuckDB type -> (text format, arrow type)
_TYPES = {
    "VARCHAR": (None, pa.string()),
    "TIMESTAMPTZ": (RE_TIMESTAMP, pa.timestamp("us", tz="UTC")),
    "DATE": (RE_DATE, pa.date32()),
    "DECIMAL(18,2)": (RE_DECIMAL, pa.decimal128(18, 2)),
    "DOUBLE": (RE_DECIMAL, pa.float64()),
    "INTEGER": (RE_INTEGER, pa.int32()),
}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    required: bool  # the column must be in the file
    nullable: bool = True  # its values may be empty
    enum: tuple[str, ...] | None = None
    regex: str | None = None  # extra textual format (beyond the type's)
    identifier: bool = False  # pseudonymous id: raw IBAN, e-mail or phone refused
    meaning: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.sql_type][1]

    @property
    def type_regex(self) -> str | None:
        return _TYPES[self.sql_type][0]


@dataclass(frozen=True)
class Check:
    """One row-level rule. `kind` selects how SQL and GX express it; `params` tunes it."""

    id: str
    file: str  # transactions | accounts
    column: str
    kind: str  # a key of schemas.checks.CHECK_TYPES (not_null, format, in_set, range, precision, ...)
    reason: str  # what a bank's data team reads
    params: dict = field(default_factory=dict)


TRANSACTIONS = (
    Column("txn_id", "VARCHAR", True, False, meaning="unique within bank_id"),
    Column("bank_id", "VARCHAR", True, False, meaning="submitting institution"),
    Column("account_id", "VARCHAR", True, False, identifier=True, meaning="own account booked (pseudonymous)"),
    Column("booked_at", "TIMESTAMPTZ", True, False, meaning="ISO 8601, with an offset or UTC"),
    Column("direction", "VARCHAR", True, False, enum=DIRECTIONS, meaning="credit: money into account_id"),
    Column("amount_eur", "DECIMAL(18,2)", True, False, meaning="amount in euro, > 0"),
    Column("currency", "VARCHAR", False, enum=tuple(sorted(ISO_CURRENCIES)), meaning="ISO 4217 original currency"),
    Column("amount_orig", "DECIMAL(18,2)", False, meaning="amount in the original currency"),
    Column("channel", "VARCHAR", True, False, enum=CHANNELS, meaning="booking channel"),
    Column("counterparty_id", "VARCHAR", False, identifier=True, meaning="counterparty account (pseudonymous)"),
    Column("counterparty_type", "VARCHAR", False, enum=COUNTERPARTY_TYPES, meaning="person, business or unknown"),
    Column("counterparty_name", "VARCHAR", False, meaning="business counterparties and merchants only"),
    Column("counterparty_country", "VARCHAR", False, enum=tuple(sorted(ISO_COUNTRIES)), meaning="ISO 3166-1 alpha-2"),
    Column("mcc", "VARCHAR", False, regex=RE_MCC, meaning="merchant category code, 4 digits"),
    Column("merchant_id", "VARCHAR", False, meaning="merchant"),
    Column("location_city", "VARCHAR", False, meaning="city of a card, ATM or cash booking"),
    Column("description", "VARCHAR", False, meaning="remittance text"),
    Column("device_id", "VARCHAR", False, identifier=True, meaning="online-banking device (pseudonymous)"),
)

FIU_EXTRA = (
    Column("report_id", "VARCHAR", True, False, meaning="FIU unusual-transaction report"),
    Column("reporting_entity", "VARCHAR", True, False, meaning="institution that reported it"),
    Column("indicator_code", "VARCHAR", True, False, meaning="Wwft indicator that made it reportable"),
)

ACCOUNTS = (
    Column("account_id", "VARCHAR", True, False, identifier=True, meaning="as in transactions"),
    Column("bank_id", "VARCHAR", True, False, meaning="institution"),
    Column("customer_id", "VARCHAR", True, False, identifier=True, meaning="pseudonymous customer"),
    Column("customer_type", "VARCHAR", True, False, enum=CUSTOMER_TYPES, meaning="person or business"),
    Column("opened_on", "DATE", True, False, meaning="account opening date"),
    Column("birth_year", "INTEGER", False, meaning="persons"),
    Column("gender", "VARCHAR", False, enum=GENDERS, meaning="persons: f, m, x"),
    Column("nationality", "VARCHAR", False, enum=tuple(sorted(ISO_COUNTRIES)), meaning="ISO 3166-1 alpha-2"),
    Column("postcode", "VARCHAR", False, meaning="4-digit Dutch postcode area or foreign postal code"),
    Column("address_id", "VARCHAR", False, identifier=True, meaning="pseudonymous address"),
    Column("phone_id", "VARCHAR", False, identifier=True, meaning="pseudonymous phone number"),
    Column("sector_code", "VARCHAR", False, regex=RE_SECTOR, meaning="SBI (NACE) code, businesses"),
)

LABELS = (
    Column("account_id", "VARCHAR", True, False),
    Column("bank_id", "VARCHAR", True, False),
    Column("typology", "VARCHAR", True, False),
    Column("role", "VARCHAR", True, False),
    Column("scenario_id", "VARCHAR", True),
)

# Identifier columns hashed by `thb-signals pseudonymise` (everything that names a person or account).
PSEUDONYMISED = {
    "transactions": ("account_id", "counterparty_id", "device_id"),
    "accounts": ("account_id", "customer_id", "address_id", "phone_id"),
}


def columns(file: str, fiu: bool = False) -> tuple[Column, ...]:
    if file == "transactions":
        return TRANSACTIONS + (FIU_EXTRA if fiu else ())
    if file == "accounts":
        return ACCOUNTS
    if file == "labels":
        return LABELS
    raise ValueError(f"unknown contract file {file!r}")


def arrow_schema(file: str, fiu: bool = False) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns(file, fiu)])


def _column_checks(file: str, cols: tuple[Column, ...]) -> list[Check]:
    out: list[Check] = []
    for c in cols:
        if not c.nullable:
            out.append(Check(f"{file}.{c.name}.not_null", file, c.name, "not_null", "is required and empty"))
        fmt = c.regex or c.type_regex
        if fmt:
            what = {"TIMESTAMPTZ": "an ISO 8601 timestamp", "DATE": "a date YYYY-MM-DD", "INTEGER": "a whole number"}.get(
                c.sql_type, "a decimal number with '.'"
            )
            if c.regex == RE_MCC:
                what = "4 digits"
            elif c.regex == RE_SECTOR:
                what = "an SBI code such as 78.20"
            out.append(
                Check(
                    f"{file}.{c.name}.format", file, c.name, "format", f"must be {what}", {"regex": fmt, "sql_type": c.sql_type}
                )
            )
        if c.enum:
            shown = ", ".join(c.enum) if len(c.enum) <= 12 else f"an ISO code ({len(c.enum)} allowed)"
            out.append(Check(f"{file}.{c.name}.in_set", file, c.name, "in_set", f"must be one of: {shown}", {"values": c.enum}))
    return out


def checks(file: str, fiu: bool = False, has_manifest: bool = False, has_accounts: bool = True) -> list[Check]:
    """Every row-level check for one file, in the order they are reported."""
    out = _column_checks(file, columns(file, fiu))
    if file == "transactions":
        out += [
            Check("transactions.amount_eur.positive", file, "amount_eur", "range", "must be > 0", {"min": 0, "strict_min": True}),
            Check(
                "transactions.amount_eur.precision",
                file,
                "amount_eur",
                "precision",
                f"is below the contract's precision of {AMOUNT_STEP} EUR (it would be stored as 0.00)",
                {"step": AMOUNT_STEP},
            ),
            Check(
                "transactions.txn_id.unique",
                file,
                "txn_id",
                "unique",
                "duplicates an earlier row's txn_id for the same bank_id",
                {"key": ("bank_id", "txn_id")},
            ),
        ]
        if has_accounts:
            out.append(
                Check(
                    "transactions.account_id.in_accounts",
                    file,
                    "account_id",
                    "in_accounts",
                    "is not among the accepted rows of the accounts file for this bank_id",
                )
            )
        if has_manifest:
            out += [
                Check(
                    "transactions.booked_at.in_period",
                    file,
                    "booked_at",
                    "in_period",
                    "falls outside the manifest's period_start..period_end",
                ),
                Check("transactions.bank_id.manifest", file, "bank_id", "equals_manifest", "differs from the manifest's bank_id"),
            ]
    elif file == "accounts":
        out += [
            Check(
                "accounts.birth_year.range",
                file,
                "birth_year",
                "range",
                "must be between 1900 and 2030",
                {"min": 1900, "max": 2030},
            ),
            Check(
                "accounts.opened_on.after_birth",
                file,
                "opened_on",
                "not_before_year",
                "lies before the holder's birth_year (an impossible record)",
                {"year": "birth_year"},
            ),
            Check(
                "accounts.birth_year.persons",
                file,
                "birth_year",
                "required_if",
                "is required for customer_type person",
                {"when": ("customer_type", "person")},
            ),
            Check(
                "accounts.sector_code.businesses",
                file,
                "sector_code",
                "required_if",
                "is required for customer_type business",
                {"when": ("customer_type", "business")},
            ),
            Check(
                "accounts.account_id.unique",
                file,
                "account_id",
                "unique",
                "duplicates an earlier row's account_id for the same bank_id",
                {"key": ("bank_id", "account_id")},
            ),
        ]
        if has_manifest:
            out.append(
                Check("accounts.bank_id.manifest", file, "bank_id", "equals_manifest", "differs from the manifest's bank_id")
            )
    return out


def markdown() -> str:
    """The contract rendered from the definitions above (`thb-signals contract`)."""
    lines = [f"# Extract contract version {CONTRACT_VERSION} (generated from schemas/contract.py)", ""]
    for file, fiu in (("transactions", False), ("accounts", False)):
        lines += [f"## {file}", "", "| column | type | required | values |", "| --- | --- | --- | --- |"]
        for c in columns(file):
            values = ", ".join(c.enum) if c.enum and len(c.enum) <= 12 else ("ISO code" if c.enum else (c.regex or ""))
            lines.append(
                f"| `{c.name}` | {c.sql_type} | {'yes' if not c.nullable else ('column' if c.required else 'no')} | {values} |"
            )
        lines += ["", "Row checks:", ""]
        lines += [f"- `{k.id}`: {k.column} {k.reason}" for k in checks(file, has_manifest=True)]
        lines.append("")
    lines += ["FIU extracts add: " + ", ".join(f"`{c.name}`" for c in FIU_EXTRA), ""]
    return "\n".join(lines)
