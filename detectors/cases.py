"""Cases: connected alerted accounts grouped into one, so an investigator works a network once.

Two alerted accounts belong to one case when money passes between them, when both exchange money
with the same third account (the unalerted controller two victims pay), or when they share an
address, phone, device or foreign beneficiary that few accounts share (net_shared). Components are
found on that reduced graph (alerted accounts plus the keys they touch) with scipy's
connected_components. A key that links more than `max_alerted_per_key` alerted accounts (a
supermarket-sized hub) is ignored rather than allowed to merge unrelated alerts.

Each account gets a likely role in its case from what fired on it and how money flows inside the
case: employer, controller (collects from case members), victim or mule (victim-side signals), or
linked. A case's id is 'C-' plus the oldest alert id among its members, so it stays the same
while its alerts stay open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from detectors.rules import RULES, rules_with_role
from schemas.settings import CaseSettings

_C = CaseSettings()  # the defaults, defined once in schemas/settings.py

# What fired on an account says its role: each rule declares the role it implies (detectors/rules).
CONTROLLER_RULES = rules_with_role("controller")
EMPLOYER_RULES = rules_with_role("employer")
VICTIM_RULES = rules_with_role("victim", "mule")
# A victim-side account of a typology whose rules fire on mules is a mule (criminal exploitation).
MULE_TYPOLOGIES = tuple(sorted({r.typology for r in RULES if r.role == "mule"}))
CASE_COLUMNS = ["case_id", "typology", "accounts", "banks", "account_ids", "roles", "money_eur", "score"]


@dataclass
class CaseGrouper:
    min_eur: float = _C.min_eur  # a money link counts from this total, or from min_transfers bookings
    min_transfers: int = _C.min_transfers
    max_alerted_per_key: int = _C.max_alerted_per_key

    def group(self, con, alerts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """alerts (with alert_id) -> (alerts with case_id and case_role, one row per case).

        Reads net_money, net_shared and hits from `con` (a scoring run's connection)."""
        if alerts.height == 0:
            return alerts.with_columns(
                pl.lit(None, pl.Utf8).alias("case_id"), pl.lit(None, pl.Utf8).alias("case_role")
            ), pl.DataFrame(schema={c: pl.Utf8 for c in CASE_COLUMNS})
        acc = alerts.select("bank_id", "account_id", "alert_id")
        comp, label, kid, money, hits = self._components(con, acc)
        a = alerts.join(comp, on="account_id", how="left")
        a = a.with_columns(("C-" + pl.col("alert_id").min().over("component")).alias("case_id"))
        a = a.join(self._roles(a, money, hits), on="account_id", how="left")
        cases = self._cases(a, money, label, kid)
        return a.drop("component"), cases

    def links(self, con, accounts: pl.DataFrame) -> pl.DataFrame:
        """Pairs (account_id, linked_id) of `accounts` (bank_id, account_id) linked directly, exactly as cases link
        alerts (money between them, a shared payee or employer, a shared key): fusion's corroboration reads it for
        every account with evidence of its own, before the alert list exists."""
        if accounts.height == 0:
            return pl.DataFrame(schema={"account_id": pl.Utf8, "linked_id": pl.Utf8})
        touch = self._touch(con, accounts.select("bank_id", "account_id").unique())[0].select("account_id", "key")
        return (
            touch.join(touch.rename({"account_id": "linked_id"}), on="key")
            .filter(pl.col("account_id") != pl.col("linked_id"))
            .select("account_id", "linked_id")
            .unique()
        )

    def _touch(self, con, acc: pl.DataFrame):
        """(account -> the keys it touches, money links, hits of `acc`)."""
        con.register("case_alerted", acc.to_arrow())
        try:
            money = con.sql(
                """SELECT m.src, m.dst, m.amount, m.n, a.customer_type = 'business' AS src_business
                                FROM net_money m JOIN win_accounts a ON a.bank_id = m.src_bank AND a.account_id = m.src
                                WHERE m.amount >= ? OR m.n >= ?""",
                params=[float(self.min_eur), int(self.min_transfers)],
            ).pl()
            shared = con.sql("""SELECT s.account_id, s.kind || ':' || s.key AS key FROM net_shared s
                                SEMI JOIN case_alerted a USING (bank_id, account_id)""").pl()
            hits = con.sql("""SELECT h.account_id, h.rule_id FROM hits h
                              SEMI JOIN case_alerted a USING (bank_id, account_id)""").pl()
        finally:
            con.unregister("case_alerted")
        alerted = set(acc["account_id"].to_list())
        src_in, dst_in = pl.col("src").is_in(alerted), pl.col("dst").is_in(alerted)
        # each alerted account touches: itself; alerted accounts it exchanges money with; an unalerted
        # account it pays (the collector several victims pay); an unalerted business that pays it (the
        # employer); its shared keys. Not an unalerted person who pays it: clients pay many victims.
        touch = pl.concat(
            [
                acc.select("account_id", pl.col("account_id").alias("key")),
                money.filter(src_in).select(pl.col("src").alias("account_id"), pl.col("dst").alias("key")),
                money.filter(dst_in & (src_in | pl.col("src_business"))).select(
                    pl.col("dst").alias("account_id"), pl.col("src").alias("key")
                ),
                shared,
            ]
        ).unique()
        fan = touch.group_by("key").agg(pl.col("account_id").n_unique().alias("fan"))
        touch = touch.join(fan, on="key").filter((pl.col("fan") <= self.max_alerted_per_key) | pl.col("key").is_in(alerted))
        return touch, money, hits

    def _components(self, con, acc: pl.DataFrame):
        """(account_id -> component, the label of every node, key -> node index, money links, hits of `acc`)."""
        touch, money, hits = self._touch(con, acc)
        ids = {a: i for i, a in enumerate(acc["account_id"].to_list())}
        keys = touch["key"].unique().to_list()
        kid = {k: len(ids) + i for i, k in enumerate(keys)}
        rows = np.array([ids[a] for a in touch["account_id"].to_list()], dtype=np.int64)
        cols = np.array([kid[k] for k in touch["key"].to_list()], dtype=np.int64)
        n = len(ids) + len(keys)
        _, label = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
        comp = pl.DataFrame({"account_id": list(ids), "component": label[: len(ids)]})
        return comp, label, kid, money, hits

    @staticmethod
    def _roles(a: pl.DataFrame, money: pl.DataFrame, hits: pl.DataFrame) -> pl.DataFrame:
        """The likely role of each alerted account inside its case."""
        case = a.select("account_id", "case_id")
        inside = (
            money.join(case.rename({"account_id": "src", "case_id": "c1"}), on="src")
            .join(case.rename({"account_id": "dst", "case_id": "c2"}), on="dst")
            .filter(pl.col("c1") == pl.col("c2"))
        )
        payers_in = inside.group_by("dst").agg(pl.col("src").n_unique().alias("from_members")).rename({"dst": "account_id"})
        payees_in = inside.group_by("src").agg(pl.col("dst").n_unique().alias("to_members")).rename({"src": "account_id"})
        per = hits.group_by("account_id").agg(
            pl.col("rule_id").is_in(list(CONTROLLER_RULES)).any().alias("controller_rule"),
            pl.col("rule_id").is_in(list(EMPLOYER_RULES)).any().alias("employer_rule"),
            pl.col("rule_id").is_in(list(VICTIM_RULES)).any().alias("victim_signal"),
        )
        r = (
            a.select("account_id", "typology")
            .join(per, on="account_id", how="left")
            .join(payers_in, on="account_id", how="left")
            .join(payees_in, on="account_id", how="left")
            .with_columns(
                pl.col("controller_rule", "employer_rule", "victim_signal").fill_null(False),
                pl.col("from_members", "to_members").fill_null(0),
            )
        )
        role = (
            pl.when(
                pl.col("employer_rule") | ((pl.col("to_members") >= 2) & ~pl.col("victim_signal") & (pl.col("from_members") == 0))
            )
            .then(pl.lit("employer"))
            .when(pl.col("controller_rule") | (pl.col("from_members") >= 2))
            .then(pl.lit("controller"))
            .when(pl.col("victim_signal") & pl.col("typology").is_in(list(MULE_TYPOLOGIES)))
            .then(pl.lit("mule"))
            .when(pl.col("victim_signal"))
            .then(pl.lit("victim"))
            .otherwise(pl.lit("linked"))
        )
        return r.select("account_id", role.alias("case_role"))

    @staticmethod
    def _cases(a: pl.DataFrame, money: pl.DataFrame, label: np.ndarray, kid: dict) -> pl.DataFrame:
        """One row per case: its accounts, roles, the money moving inside it and its typology."""
        comp_case = a.select("component", "case_id").unique()
        # every account node of a component (alerted members and the unalerted accounts they pay or are paid by)
        nodes = (
            pl.DataFrame({"node": list(kid), "component": label[[kid[k] for k in kid]]})
            .vstack(a.select(pl.col("account_id").alias("node"), "component"))
            .unique()
        )
        flows = (
            money.join(nodes.rename({"node": "src", "component": "c1"}), on="src")
            .join(nodes.rename({"node": "dst", "component": "c2"}), on="dst")
            .filter(pl.col("c1") == pl.col("c2"))
        )
        cash = flows.group_by("c1").agg(pl.col("amount").sum().alias("money_eur")).rename({"c1": "component"})
        typ = (
            a.group_by("component", "typology")
            .agg(pl.col("score").sum().alias("w"))
            .sort("w", "typology", descending=[True, False])
            .group_by("component", maintain_order=True)
            .first()
        )
        agg = a.group_by("component").agg(
            pl.len().alias("accounts"),
            pl.col("bank_id").unique().sort().alias("banks"),
            pl.col("account_id").sort().alias("account_ids"),
            pl.col("score").max().alias("score"),
            pl.col("case_role").value_counts(sort=True).alias("roles"),
        )
        out = (
            agg.join(comp_case, on="component")
            .join(typ.select("component", "typology"), on="component")
            .join(cash, on="component", how="left")
            .with_columns(pl.col("money_eur").fill_null(0.0))
        )
        out = out.with_columns(
            pl.col("roles")
            .list.eval(pl.element().struct.field("case_role") + ": " + pl.element().struct.field("count").cast(pl.Utf8))
            .list.join(", ")
        )
        return out.select(CASE_COLUMNS).sort("score", "case_id", descending=[True, False])
