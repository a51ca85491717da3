"""A tiny hand-written store for detector tests: accounts and bookings by day and local hour."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from pipelines import store
from schemas import contract

END = date(2026, 9, 30)
DAYS = 90
AMS = ZoneInfo("Europe/Amsterdam")


class Book:
    def __init__(self):
        self.accounts: list[dict] = []
        self.txns: list[dict] = []
        self.reports: list[dict] = []
        self.account("filler")
        self.tx("filler", DAYS - 1, 12, "debit", 5, "card", name="Albert Heijn", mcc="5411", city="Amsterdam")
        self.tx("filler", 0, 12, "debit", 5, "card", name="Albert Heijn", mcc="5411", city="Amsterdam")

    def account(
        self,
        account_id,
        bank="BANK_A",
        kind="person",
        age=35,
        gender="f",
        nationality="NL",
        opened_days=3000,
        address=None,
        phone=None,
        sector=None,
        customer=None,
    ) -> str:
        self.accounts.append(
            {
                "account_id": account_id,
                "bank_id": bank,
                "customer_id": customer or f"cust-{account_id}",
                "customer_type": kind,
                "opened_on": END - timedelta(days=opened_days),
                "birth_year": END.year - age if kind == "person" else None,
                "gender": gender if kind == "person" else None,
                "nationality": nationality,
                "postcode": "1011",
                "address_id": address or f"addr-{account_id}",
                "phone_id": phone or f"phone-{account_id}",
                "sector_code": sector if kind == "business" else None,
            }
        )
        return account_id

    def tx(
        self,
        account_id,
        day,
        hour,
        direction,
        amount,
        channel,
        cp=None,
        cptype=None,
        name=None,
        country="NL",
        mcc=None,
        city=None,
        desc=None,
        device=None,
        minute=0,
        bank=None,
    ) -> str:
        assert 0 <= day < DAYS, "bookings must fall inside the 90-day window"
        bank = bank or next(a["bank_id"] for a in self.accounts if a["account_id"] == account_id)
        txn_id = f"T{len(self.txns):06d}"
        local = datetime.combine(END - timedelta(days=DAYS - 1 - day), datetime.min.time()).replace(
            hour=hour, minute=minute, tzinfo=AMS
        )
        self.txns.append(
            {
                "txn_id": txn_id,
                "bank_id": bank,
                "account_id": account_id,
                "booked_at": local.astimezone(ZoneInfo("UTC")),
                "direction": direction,
                "amount_eur": float(amount),
                "currency": None,
                "amount_orig": None,
                "channel": channel,
                "counterparty_id": cp,
                "counterparty_type": cptype,
                "counterparty_name": name,
                "counterparty_country": country,
                "mcc": mcc,
                "merchant_id": None,
                "location_city": city,
                "description": desc,
                "device_id": device,
            }
        )
        return txn_id

    def transfer(
        self,
        src,
        dst,
        day,
        hour,
        amount,
        channel="instant_transfer",
        desc=None,
        src_type="person",
        dst_type="person",
        src_name=None,
        device=None,
    ) -> tuple[str, str]:
        """Both sides of a transfer between two accounts in the book."""
        a = self.tx(src, day, hour, "debit", amount, channel, cp=dst, cptype=dst_type, desc=desc, device=device)
        b = self.tx(dst, day, hour, "credit", amount, channel, cp=src, cptype=src_type, name=src_name, desc=desc)
        return a, b

    def fiu_report(self, txn_id, report_id="R-1") -> None:
        """File one of the book's bookings as an FIU unusual-transaction report."""
        t = next(t for t in self.txns if t["txn_id"] == txn_id)
        self.reports.append({**t, "report_id": report_id, "reporting_entity": "BANK_X", "indicator_code": "subjective"})

    def write(self, db_path) -> str:
        con = store.connect(db_path)
        try:
            tx = pl.DataFrame(
                self.txns,
                schema_overrides={
                    "amount_orig": pl.Float64,
                    "currency": pl.Utf8,
                    "merchant_id": pl.Utf8,
                    "description": pl.Utf8,
                    "device_id": pl.Utf8,
                },
                infer_schema_length=None,
            )
            acc = pl.DataFrame(
                self.accounts, schema_overrides={"birth_year": pl.Int32, "gender": pl.Utf8, "sector_code": pl.Utf8}
            )
            con.register("tx_df", tx.to_arrow())
            con.register("acc_df", acc.to_arrow())
            cols = ", ".join(f'CAST("{c.name}" AS {c.sql_type})' for c in contract.TRANSACTIONS)
            con.execute(f"INSERT INTO transactions SELECT {cols}, 'test' FROM tx_df")
            cols = ", ".join(f'CAST("{c.name}" AS {c.sql_type})' for c in contract.ACCOUNTS)
            con.execute(f"INSERT INTO accounts SELECT {cols}, 'test' FROM acc_df")
            if self.reports:
                con.register("fiu_df", pl.DataFrame(self.reports, schema_overrides=tx.schema).to_arrow())
                cols = ", ".join(f'CAST("{c.name}" AS {c.sql_type})' for c in contract.TRANSACTIONS + contract.FIU_EXTRA)
                con.execute(f"INSERT INTO fiu_reports SELECT {cols}, 'test' FROM fiu_df")
        finally:
            con.close()
        return str(db_path)
