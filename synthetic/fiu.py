"""`thb-signals generate --fiu`: a synthetic FIU extract (contract v1 + report_id, reporting_entity, indicator_code).

Reports from every kind of obliged entity. Most are unusual but innocent (remittances to family, business cash,
casino and car-dealer cash, crypto trading, a loan), some of them look-alikes that come close to a theme or even hit
one (a club collecting contributions, a village collection abroad, a young crypto trader, a travelling salesman).
Planted among them: trafficking networks of five kinds, some too small to reach a theme's thresholds, labelled
per subject (network, typology, role) in fiu_labels.parquet, outside the submission folder.
Deterministic for a seed: the same seed writes the same files.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

ENTITIES = {
    "bank": ["BANK_A", "BANK_B", "BANK_C", "BANK_D"],
    "money_transfer": ["MTO_RIA", "MTO_WU", "MTO_MG"],
    "payment_institution": ["PI_PAYNL", "PI_MOLLIE"],
    "casino": ["CASINO_HC"],
    "crypto": ["CRYPTO_BITV", "CRYPTO_LITE"],
    "dealer": ["DEALER_AUTO", "DEALER_LUX"],
    "lender": ["LENDER_FREO", "LENDER_BNPL", "LENDER_KREDIET"],
    "telecom": ["TELCO_KPN", "TELCO_VOD", "TELCO_TMOB"],
}
CITIES = [
    "Amsterdam",
    "Rotterdam",
    "Den Haag",
    "Utrecht",
    "Eindhoven",
    "Groningen",
    "Tilburg",
    "Almere",
    "Breda",
    "Nijmegen",
    "Arnhem",
    "Enschede",
    "Zwolle",
    "Maastricht",
    "Leiden",
]
SOURCE = ["NG", "RO", "BG", "HU", "CN", "VN", "UA", "MD", "AL", "TH", "PH", "GH", "UG", "BR", "CO"]
OTHER = ["MA", "TR", "SR", "DE", "BE", "ES", "IN", "PK", "ID", "GB", "FR", "IT", "EG", "ET", "ER"]
HOTELS = ["Hotel Centraal", "Booking.com", "Airbnb", "Hostel Noord", "Van der Valk Hotel", "Short Stay Rotterdam"]
COLUMNS = [
    "txn_id",
    "bank_id",
    "account_id",
    "booked_at",
    "direction",
    "amount_eur",
    "currency",
    "amount_orig",
    "channel",
    "counterparty_id",
    "counterparty_type",
    "counterparty_name",
    "counterparty_country",
    "mcc",
    "merchant_id",
    "location_city",
    "description",
    "device_id",
    "report_id",
    "reporting_entity",
    "indicator_code",
]
CODES = ["OBJ-MT-2000", "OBJ-CASH-10000", "SUBJ-GEN", "SUBJ-PATTERN", "SUBJ-MEDIA"]


class _Book:
    """Collects report rows as column arrays; each add() is one vectorised batch."""

    def __init__(self, rng: np.random.Generator, start: date, days: int):
        self.rng, self.start, self.days, self.parts, self.people, self.labels = rng, start, days, [], [], []
        self.n_ids = 0

    def ids(self, n: int) -> np.ndarray:
        """Pseudonymous 32-hex ids (the partners' keyed hash in real data), unique within the extract."""
        return np.frombuffer(self.rng.bytes(16 * n).hex().encode(), dtype="S32").astype(str)

    def add(
        self,
        entity,
        account_id,
        direction,
        amount,
        channel,
        cp_id=None,
        cp_type=None,
        cp_name=None,
        cp_country=None,
        mcc=None,
        city=None,
        description=None,
        day=None,
        code=None,
        device=None,
    ):
        n = len(account_id)
        b = lambda v, dt=object: np.full(n, v, dtype=dt) if np.isscalar(v) or v is None else np.asarray(v, dtype=dt)  # noqa: E731
        day = self.rng.integers(0, self.days, n) if day is None else b(day, np.int64)
        secs = self.rng.integers(7 * 3600, 23 * 3600, n)
        code = self.rng.choice(CODES, n) if code is None else b(code)
        self.parts.append(
            pl.DataFrame(
                {
                    "reporting_entity": b(entity).astype(str),
                    "account_id": b(account_id).astype(str),
                    "direction": b(direction).astype(str),
                    "amount_eur": np.round(
                        np.asarray(amount, dtype=float) if not np.isscalar(amount) else np.full(n, float(amount)), 2
                    ),
                    "channel": b(channel).astype(str),
                    "counterparty_id": b(cp_id),
                    "counterparty_type": b(cp_type),
                    "counterparty_name": b(cp_name),
                    "counterparty_country": b(cp_country),
                    "mcc": b(mcc),
                    "location_city": b(city),
                    "description": b(description),
                    "day": day,
                    "sec": secs,
                    "indicator_code": code,
                    "device_id": b(device),
                },
                schema_overrides={
                    c: pl.Utf8
                    for c in (
                        "counterparty_id",
                        "counterparty_type",
                        "counterparty_name",
                        "counterparty_country",
                        "mcc",
                        "location_city",
                        "description",
                        "device_id",
                    )
                },
            )
        )

    def person(self, entity, account_id, birth_year):
        self.people.append(
            pl.DataFrame(
                {
                    "bank_id": np.asarray(entity, dtype=str),
                    "account_id": np.asarray(account_id, dtype=str),
                    "birth_year": np.asarray(birth_year, dtype=np.int64),
                }
            )
        )

    def label(self, subject_ids, network_id, typology, role):
        self.labels.append(
            pl.DataFrame(
                {"subject_id": np.asarray(subject_ids, dtype=str), "network_id": network_id, "typology": typology, "role": role}
            )
        )


def _pick(rng, kind: str, n: int) -> np.ndarray:
    return rng.choice(ENTITIES[kind], n)


def _background(bk: _Book, n_reports: int) -> None:
    rng = bk.rng
    u = max(1, n_reports // 10)
    # remittances to family abroad: one sender, one receiver, one to three transfers (objective indicator)
    n = 3 * u
    s, r = bk.ids(n), bk.ids(n)
    k = rng.integers(1, 4, n)
    s, r = np.repeat(s, k), np.repeat(r, k)
    country = np.repeat(rng.choice(SOURCE + OTHER, n), k)
    amt = np.where(rng.random(len(s)) < 0.15, rng.uniform(1500, 1999, len(s)), rng.lognormal(np.log(2600), 0.3, len(s)))
    bk.add(
        np.repeat(_pick(rng, "money_transfer", n), k),
        s,
        "debit",
        amt,
        "money_remittance",
        r,
        "person",
        None,
        country,
        description="family support",
    )
    # families abroad with two or three senders (look-alike of many senders to one receiver)
    n = u // 3
    r = bk.ids(n)
    k = rng.integers(2, 4, n)
    rr = np.repeat(r, k)
    bk.add(
        _pick(rng, "money_transfer", len(rr)),
        bk.ids(len(rr)),
        "debit",
        rng.lognormal(np.log(2300), 0.3, len(rr)),
        "money_remittance",
        rr,
        "person",
        None,
        np.repeat(rng.choice(SOURCE, n), k),
    )
    # business cash deposits, one city
    n = u
    acc = bk.ids(n)
    k = rng.integers(1, 4, n)
    bk.add(
        np.repeat(_pick(rng, "bank", n), k),
        np.repeat(acc, k),
        "credit",
        rng.lognormal(np.log(14000), 0.4, k.sum()),
        "cash_deposit",
        city=np.repeat(rng.choice(CITIES, n), k),
        description="dagontvangst",
    )
    # market traders: cash deposits in several cities, no lodging (look-alike)
    n = u // 4
    acc = bk.ids(n)
    acc4 = np.repeat(acc, 4)
    bk.add(
        np.repeat(_pick(rng, "bank", n), 4),
        acc4,
        "credit",
        rng.lognormal(np.log(3000), 0.3, 4 * n),
        "cash_deposit",
        city=rng.choice(CITIES, 4 * n),
        description="marktopbrengst",
    )
    # business travellers: hotel and a cash deposit in one city (look-alike)
    n = u // 3
    acc, ent, city = bk.ids(n), _pick(rng, "bank", n), rng.choice(CITIES, n)
    bk.add(
        ent,
        acc,
        "debit",
        rng.uniform(300, 2500, n),
        "card",
        cp_name=rng.choice(HOTELS, n),
        cp_type="business",
        mcc="7011",
        city=city,
    )
    bk.add(ent, acc, "credit", rng.uniform(2000, 9000, n), "cash_deposit", city=city)
    # casino cash, dealers' cash sales
    n = u
    bk.add(
        _pick(rng, "casino", n),
        bk.ids(n),
        rng.choice(["credit", "debit"], n),
        rng.lognormal(np.log(4000), 0.6, n),
        "other",
        description="fiches contant",
        city="Amsterdam",
    )
    n = u
    bk.add(
        _pick(rng, "dealer", n),
        bk.ids(n),
        "debit",
        rng.lognormal(np.log(18000), 0.5, n),
        "cash_deposit",
        cp_type="business",
        cp_name=rng.choice(["Autobedrijf", "Horlogehuis", "Juwelier"], n),
        description="contante aankoop",
    )
    # crypto: pay-outs to adults of any size, small ones to the young
    n = u
    acc, ent = bk.ids(n), _pick(rng, "crypto", n)
    k = rng.integers(1, 4, n)
    young = rng.random(n) < 0.35
    by = np.where(young, rng.integers(2003, 2009, n), rng.integers(1955, 2000, n))
    amt = np.where(np.repeat(young, k), rng.uniform(150, 900, k.sum()), rng.lognormal(np.log(4000), 0.7, k.sum()))
    bk.add(np.repeat(ent, k), np.repeat(acc, k), "credit", amt, "wallet", description="payout")
    bk.person(ent, acc, by)
    # a loan, sometimes with a phone contract (two entities: look-alike of creditboys)
    n = u
    acc = bk.ids(n)
    bk.add(
        _pick(rng, "lender", n),
        acc,
        "credit",
        rng.uniform(1000, 8000, n),
        "loan_disbursement",
        cp_type="business",
        description="uitbetaling lening",
    )
    m = rng.random(n) < 0.4
    bk.add(
        _pick(rng, "telecom", m.sum()),
        acc[m],
        "debit",
        rng.uniform(600, 1400, m.sum()),
        "direct_debit",
        cp_type="business",
        description="toestelkrediet",
    )
    bk.person(np.full(n, "LENDER_FREO"), acc, rng.integers(1960, 2006, n))
    # one-off large private transfers at banks and payment institutions (a car sold, a loan to a friend)
    n = 2 * u
    bk.add(
        _pick(rng, "bank", n),
        bk.ids(n),
        "debit",
        rng.lognormal(np.log(6000), 0.6, n),
        rng.choice(["transfer", "instant_transfer"], n),
        bk.ids(n),
        "person",
        None,
        "NL",
    )
    # a webshop's customers at one bank (many senders, one reporting entity: look-alike)
    n = u // 10
    r = bk.ids(n)
    rr = np.repeat(r, 6)
    bk.add(
        np.repeat(_pick(rng, "bank", n), 6),
        bk.ids(6 * n),
        "debit",
        rng.uniform(800, 3000, 6 * n),
        "transfer",
        rr,
        "person",
        None,
        "NL",
    )
    # flatmates paying one landlord at one bank from their wages (look-alike of pooled wages)
    n = u // 10
    for _ in range(1):
        land = np.repeat(bk.ids(n), 3)
        w = bk.ids(3 * n)
        ent = np.repeat(_pick(rng, "bank", n), 3)
        bk.add(ent, w, "credit", rng.uniform(1800, 2600, 3 * n), "transfer", cp_type="business", description="salaris")
        bk.add(ent, w, "debit", rng.uniform(500, 900, 3 * n), "transfer", land, "person", None, "NL", description="huur kamer")


def _innocent_hits(bk: _Book, n: int) -> None:
    """Innocent subjects that do hit a theme: a club, a village collection, a young trader, a travelling salesman."""
    rng = bk.rng
    for _ in range(n):
        club, k = bk.ids(1)[0], int(rng.integers(4, 8))
        bk.add(
            rng.choice(ENTITIES["bank"] + ENTITIES["payment_institution"], k),
            bk.ids(k),
            "debit",
            rng.uniform(900, 2500, k),
            "transfer",
            club,
            "person",
            None,
            "NL",
            description="contributie reis",
        )
        r, k = bk.ids(1)[0], int(rng.integers(4, 7))
        bk.add(
            _pick(rng, "money_transfer", k),
            bk.ids(k),
            "debit",
            rng.uniform(2000, 3000, k),
            "money_remittance",
            r,
            "person",
            None,
            rng.choice(SOURCE),
            description="funeral",
        )
        a, e = bk.ids(1)[0], rng.choice(ENTITIES["crypto"])
        bk.add(e, np.repeat(a, 3), "credit", rng.uniform(1500, 4000, 3), "wallet", description="payout")
        bk.person([e], [a], [int(rng.integers(2004, 2008))])
        if rng.random() < 0.5:
            a, e = bk.ids(1)[0], rng.choice(ENTITIES["bank"])
            bk.add(
                e,
                np.repeat(a, 2),
                "debit",
                rng.uniform(100, 300, 2),
                "card",
                cp_type="business",
                cp_name="Hotel Centraal",
                mcc="7011",
            )
            bk.add(
                e,
                np.repeat(a, 3),
                "credit",
                rng.uniform(2000, 6000, 3),
                "cash_deposit",
                city=rng.choice(CITIES, 3, replace=False),
            )


def _network(bk: _Book, net: str, kind: str, weak: bool) -> None:
    rng = bk.rng
    d0 = int(rng.integers(0, bk.days - 40))
    if kind == "cross_border":
        k = int(rng.integers(2, 4) if weak else rng.integers(4, 9))
        victims, recv = bk.ids(k), bk.ids(1)[0]
        m = rng.integers(2, 5, k)
        v = np.repeat(victims, m)
        structured = rng.random(len(v)) < 0.6
        amt = np.where(structured, rng.uniform(1500, 1999, len(v)), rng.uniform(2000, 3500, len(v)))
        bk.add(
            _pick(rng, "money_transfer", len(v)),
            v,
            "debit",
            amt,
            "money_remittance",
            recv,
            "person",
            None,
            rng.choice(SOURCE[:6]),
            day=d0 + rng.integers(0, 40, len(v)),
            description="family support",
        )
        bk.label(victims, net, kind, "victim")
        bk.label([recv], net, kind, "collector")
    elif kind == "sexual_exploitation":
        k = int(rng.integers(2, 3) if weak else rng.integers(3, 7))
        victims, boss = bk.ids(k), bk.ids(1)[0]
        m = rng.integers(2, 5, k)
        v = np.repeat(victims, m)
        ent = rng.choice(ENTITIES["bank"] + ENTITIES["payment_institution"], k)
        bk.add(
            np.repeat(ent, m),
            v,
            "debit",
            rng.uniform(400, 2500, len(v)),
            rng.choice(["transfer", "instant_transfer"], len(v)),
            boss,
            "person",
            None,
            "NL",
            day=d0 + rng.integers(0, 40, len(v)),
        )
        travel = rng.random(k) < (0.3 if weak else 0.7)
        for vic, e in zip(victims[travel], ent[travel]):
            bk.add(
                e,
                np.repeat(vic, 2),
                "debit",
                rng.uniform(90, 400, 2),
                "card",
                cp_type="business",
                cp_name=rng.choice(HOTELS),
                mcc="7011",
                day=d0 + rng.integers(0, 40, 2),
            )
            c = int(rng.integers(2, 5))
            bk.add(
                e,
                np.repeat(vic, c),
                "credit",
                rng.uniform(500, 3000, c),
                "cash_deposit",
                city=rng.choice(CITIES, c, replace=False),
                day=d0 + rng.integers(0, 40, c),
            )
        bk.label(victims, net, kind, "victim")
        bk.label([boss], net, kind, "controller")
    elif kind == "coerced_debt":
        k = int(rng.integers(1, 3) if weak else rng.integers(2, 5))
        victims, boy = bk.ids(k), bk.ids(1)[0]
        for vic in victims:
            nl, nt = (1, 1) if weak else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            lenders = rng.choice(ENTITIES["lender"], nl, replace=False)
            bk.add(
                lenders,
                np.repeat(vic, nl),
                "credit",
                rng.uniform(1500, 6000, nl),
                "loan_disbursement",
                cp_type="business",
                description="uitbetaling lening",
                day=d0 + rng.integers(0, 30, nl),
            )
            bk.add(
                rng.choice(ENTITIES["telecom"], nt, replace=False),
                np.repeat(vic, nt),
                "debit",
                rng.uniform(800, 1500, nt),
                "direct_debit",
                cp_type="business",
                description="toestelkrediet",
                day=d0 + rng.integers(0, 30, nt),
            )
            bk.add(
                rng.choice(ENTITIES["bank"]),
                [vic],
                "debit",
                rng.uniform(1500, 5000, 1),
                "instant_transfer",
                boy,
                "person",
                None,
                "NL",
                day=d0 + int(rng.integers(0, 35)),
            )
            bk.person(lenders, np.repeat(vic, nl), np.full(nl, int(rng.integers(2000, 2007))))
        bk.label(victims, net, kind, "victim")
        bk.label([boy], net, kind, "controller")
    elif kind == "criminal_exploitation":
        k = int(rng.integers(1, 3) if weak else rng.integers(2, 5))
        mules, boss = bk.ids(k), bk.ids(1)[0]
        for mule in mules:
            e, c = rng.choice(ENTITIES["crypto"]), int(rng.integers(1, 2) if weak else rng.integers(2, 5))
            bk.add(
                e,
                np.repeat(mule, c),
                "credit",
                rng.uniform(1200, 4500, c),
                "wallet",
                description="payout",
                day=d0 + rng.integers(0, 40, c),
            )
            bk.person([e], [mule], [int(rng.integers(2004, 2009))])
            bk.add(
                rng.choice(ENTITIES["bank"]),
                [mule],
                "debit",
                rng.uniform(1000, 4000, 1),
                "transfer",
                boss,
                "person",
                None,
                "NL",
                day=d0 + int(rng.integers(0, 40)),
            )
        bk.label(mules, net, kind, "mule")
        bk.label([boss], net, kind, "controller")
    else:  # labour_exploitation
        k = int(rng.integers(2, 4) if weak else rng.integers(3, 9))
        workers, pool = bk.ids(k), bk.ids(1)[0]
        ent = rng.choice(ENTITIES["bank"][:2] if not weak else ENTITIES["bank"][:1], k)
        weeks = int(rng.integers(2, 5))
        w = np.repeat(workers, weeks)
        e = np.repeat(ent, weeks)
        days = d0 + np.tile(np.arange(weeks) * 7, k)
        wage = rng.uniform(450, 700, len(w))
        bk.add(
            e, w, "credit", wage, "transfer", cp_type="business", cp_name="Uitzendbureau Flex", description="loon week", day=days
        )
        bk.add(e, w, "debit", wage * rng.uniform(0.6, 0.9, len(w)), "transfer", pool, "person", None, "NL", day=days + 1)
        bk.label(workers, net, kind, "worker")
        bk.label([pool], net, kind, "controller")


KINDS = ["cross_border", "sexual_exploitation", "coerced_debt", "criminal_exploitation", "labour_exploitation"]


def generate_fiu(
    out_dir: str | Path,
    reports: int = 6000,
    networks: int = 40,
    seed: int = 1,
    end: str = "2026-09-30",
    days: int = 90,
    weak_share: float = 0.2,
    fmt: str = "parquet",
) -> dict:
    """Write OUT_DIR/FIU_NL/ (transactions + accounts of the reported persons) and OUT_DIR/fiu_labels.parquet."""
    rng = np.random.default_rng(seed)
    end_d = date.fromisoformat(end)
    start_d = end_d - timedelta(days=days - 1)
    bk = _Book(rng, start_d, days)
    _background(bk, reports)
    _innocent_hits(bk, max(1, networks // 4))
    for i in range(networks):
        _network(bk, f"NET-{i:03d}", KINDS[i % len(KINDS)], bool(rng.random() < weak_share))
    df = pl.concat(bk.parts, how="vertical_relaxed")
    t0 = datetime.combine(start_d, datetime.min.time(), tzinfo=timezone.utc)
    df = df.with_columns(pl.col("day").clip(0, days - 1))
    df = df.with_columns((pl.lit(t0) + pl.duration(days=pl.col("day"), seconds=pl.col("sec"))).alias("booked_at"))
    df = df.with_row_index("seq").with_columns(
        pl.col("reporting_entity").alias("bank_id"),
        (pl.col("reporting_entity") + "-T" + pl.col("seq").cast(pl.Utf8).str.zfill(8)).alias("txn_id"),
        ("MOT-" + pl.col("seq").cast(pl.Utf8).str.zfill(8)).alias("report_id"),
        pl.lit(None, pl.Utf8).alias("currency"),
        pl.lit(None, pl.Float64).alias("amount_orig"),
        pl.lit(None, pl.Utf8).alias("merchant_id"),
        pl.when(pl.col("counterparty_type") == "business").then(pl.col("counterparty_name")).alias("counterparty_name"),
    )
    df = df.select(COLUMNS)
    people = pl.concat(bk.people).unique(["bank_id", "account_id"], keep="first", maintain_order=True)
    accounts = (
        df.select("bank_id", "account_id")
        .unique(maintain_order=True)
        .join(people, on=["bank_id", "account_id"], how="left", maintain_order="left")
        .with_columns(
            pl.col("account_id").alias("customer_id"),
            pl.lit("person").alias("customer_type"),
            pl.lit(start_d - timedelta(days=400)).alias("opened_on"),
        )
        .with_columns(pl.col("birth_year").fill_null(pl.col("account_id").str.slice(0, 4).str.to_integer(base=16) % 50 + 1950))
    )
    labels = pl.concat(bk.labels)
    out = Path(out_dir)
    folder = out / "FIU_NL"
    folder.mkdir(parents=True, exist_ok=True)
    acc_cols = ["account_id", "bank_id", "customer_id", "customer_type", "opened_on", "birth_year"]
    if fmt == "csv":
        df.with_columns(pl.col("booked_at").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")).write_csv(folder / "transactions.csv")
        accounts.select(acc_cols).write_csv(folder / "accounts.csv")
    else:
        df.write_parquet(folder / "transactions.parquet")
        accounts.select(acc_cols).write_parquet(folder / "accounts.parquet")
    labels.write_parquet(out / "fiu_labels.parquet")
    return {
        "reports": df.height,
        "entities": df["reporting_entity"].n_unique(),
        "accounts": accounts.height,
        "networks": labels["network_id"].n_unique(),
        "labelled_subjects": labels.height,
        "folder": str(folder),
        "labels": str(out / "fiu_labels.parquet"),
    }
