"""How controllers launder proceeds through other people's accounts, and the innocent flows that look like it.

Seven patterns of transfers between accounts of the population (as in laundering simulators): cycle, scatter-gather,
gather-scatter, fan-out (to fresh mule accounts), fan-in, stack (layering chain) and bipartite. Each pattern moves a
sum of proceeds in time order, every intermediary passing most of it on (a small cut kept) soon after it arrives.
Half of the patterns that start from one account's money (cycle, scatter-gather, fan-out, stack) start from a
trafficking scenario's controller: that is whose proceeds are laundered. Look-alikes are labelled as hard negatives:
salary split over the earner's own accounts every month, a family pooling into one household account every month, a
landlord collecting rent and passing it to a managing agent.

Labels: one row per planted account (population index `acc`, typology, role, scenario_id, pattern, onset day); a
controller that starts a pattern keeps its own scenario's label (`own_label` true) and only gains the pattern.

Stream mode (`stream`, as synthetic/typologies.py streams the scenarios): each kind's patterns start on days spread
evenly over the whole span (one per equal slot) and each starts its bursts within a week of that onset, with as many patterns per day
of data as the default 90 days hold; the label's onset is that start. Without it a pattern's bursts fall anywhere before
the last 20 days, so a month of a long span can hold many patterns or none (the learning simulation measured that
chance, not learning: bench/results/diag-heldout-fall-tune2-20k-stream.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.events import Events

PATTERNS = ("cycle", "scatter_gather", "gather_scatter", "fan_out", "stack", "bipartite", "fan_in")
PATTERNS_PER_ACCOUNT = (
    0.00015  # patterns of each kind per account (3 of each per 20,000 accounts: laundering about a third of planted accounts)
)
LOOKALIKES = ("salary_split", "family_pool", "landlord")
CONTROLLER_SHARE = 0.5  # patterns with one origin that start from a trafficking controller's account
DEFAULT_DAYS = 90  # the span PATTERNS_PER_ACCOUNT is counted over: stream mode keeps that many per day of data
STREAM_RUN_HOURS = 7 * 24  # stream mode: a pattern's transfers start within a week of its onset
STREAM_PATTERN_DAYS = (STREAM_RUN_HOURS + 6 * 60) // 24  # ... and end by then: a week, then up to six hops of 60 h (22)


class _Planter:
    def __init__(self, ev: Events, rng: np.random.Generator, pool: list[int], controllers: list[int] = ()):
        self.ev, self.rng, self.pool, self.labels = ev, rng, pool, []
        self.controllers, self.launderers = list(controllers), set()
        self.horizon = max(ev.days - 20, 1) * 24.0  # a pattern starts early enough to finish inside a long window
        self.onset: float | None = None  # stream mode: the hour the current pattern starts (plant_laundering sets it)

    def when(self, n=None):
        """Hours after the data's start at which a pattern's bursts begin: anywhere before the horizon, or in stream
        mode within a week of the pattern's onset (a burst past the data's end is dropped, like a scenario's)."""
        if self.onset is None:
            return self.rng.uniform(0, self.horizon, n)
        return self.onset + self.rng.uniform(0, STREAM_RUN_HOURS, n)

    def take(self, k: int) -> np.ndarray:
        out = np.array(self.pool[:k], dtype=np.int64)
        del self.pool[:k]
        return out

    def pay(self, src, dst, hours, amount, description=None) -> None:
        """Transfers at `hours` after the window start (arrays of one length)."""
        hours = np.asarray(hours, dtype=float)
        day = (hours // 24).astype(np.int64)
        minute = ((hours % 24) * 60).astype(np.int64)
        channel = np.where(self.rng.random(len(hours)) < 0.5, "instant_transfer", "transfer")
        self.ev.transfer(
            np.asarray(src),
            np.asarray(dst),
            day,
            minute,
            np.round(np.asarray(amount, dtype=float), 2),
            channel,
            description=description,
        )

    def origin(self) -> np.ndarray:
        """Where the proceeds start: a trafficking controller's account (half the time, while any is left) or a mule's."""
        if self.controllers and self.rng.random() < CONTROLLER_SHARE:
            a = self.controllers.pop()
            self.launderers.add(a)
            return np.array([a], dtype=np.int64)
        return self.take(1)

    def label(self, acc, typology, role, sid, pattern=None) -> None:
        day = None if self.onset is None or pattern is None else int(self.onset // 24)
        for a in np.atleast_1d(acc):
            self.labels.append((int(a), typology, role, sid, pattern, int(a) in self.launderers, day))

    def proceeds(self) -> float:
        return float(np.exp(self.rng.normal(np.log(4000), 0.5)))

    def keep(self, n=None):
        """Share an intermediary passes on: its cut or the fee is 1-12 %."""
        return self.rng.uniform(0.88, 0.99, n)

    # ------------------------------------------------------------------ patterns
    def cycle(self, sid):
        r = self.rng
        acc = np.r_[self.origin(), self.take(int(r.integers(2, 6)))]
        for t in self.when(int(r.integers(1, 3))):
            amt = self.proceeds()
            for i in range(len(acc)):
                self.pay([acc[i]], [acc[(i + 1) % len(acc)]], [t], [amt])
                t += r.uniform(2, 60)
                amt *= self.keep()
        self.label(acc[:1], "laundering", "origin", sid, "cycle")
        self.label(acc[1:], "laundering", "intermediary", sid, "cycle")

    def scatter_gather(self, sid):
        r = self.rng
        k = int(r.integers(3, 7))
        s, mids, d = self.origin(), self.take(k), self.take(1)
        t0, total = self.when(), self.proceeds() * 1.5
        share = total / k * r.uniform(0.85, 1.15, k)
        t_in = t0 + r.uniform(0, 24, k)
        self.pay(np.repeat(s, k), mids, t_in, share)
        self.pay(mids, np.repeat(d, k), t_in + r.uniform(4, 120, k), share * self.keep(k))
        self.label(s, "laundering", "origin", sid, "scatter_gather")
        self.label(mids, "laundering", "intermediary", sid, "scatter_gather")
        self.label(d, "laundering", "destination", sid, "scatter_gather")

    def gather_scatter(self, sid):
        r = self.rng
        k_in, k_out = int(r.integers(3, 7)), int(r.integers(3, 7))
        src, hub, dst = self.take(k_in), self.take(1), self.take(k_out)
        t0 = self.when()
        amounts = np.exp(r.normal(np.log(1500), 0.3, k_in))
        t_in = t0 + r.uniform(0, 48, k_in)
        self.pay(src, np.repeat(hub, k_in), t_in, amounts)
        out = amounts.sum() * self.keep() / k_out * r.uniform(0.85, 1.15, k_out)
        self.pay(np.repeat(hub, k_out), dst, t_in.max() + r.uniform(6, 72, k_out), out)
        self.label(src, "laundering", "sender", sid, "gather_scatter")
        self.label(hub, "laundering", "collector", sid, "gather_scatter")
        self.label(dst, "laundering", "receiver", sid, "gather_scatter")

    def fan_out(self, sid, pop):
        r = self.rng
        k = int(r.integers(6, 11))
        payer, dst = self.origin(), self.take(k)
        fresh = r.random(k) < 0.7  # mule accounts opened for the purpose
        since = 0 if self.onset is None else max(0, self.ev.days - int(self.onset // 24) - 7)  # stream: new when used
        pop.account_age_days[dst[fresh]] = r.integers(5, 90, int(fresh.sum())) + since
        base = r.uniform(500, 3000)
        self.pay(np.repeat(payer, k), dst, self.when() + r.uniform(0, 96, k), base * r.uniform(0.93, 1.07, k))
        self.label(payer, "laundering", "origin", sid, "fan_out")
        self.label(dst, "laundering", "receiver", sid, "fan_out")

    def fan_in(self, sid):
        r = self.rng
        k = int(r.integers(5, 11))
        src, coll = self.take(k), self.take(1)
        base = r.uniform(400, 2500)
        self.pay(src, np.repeat(coll, k), self.when() + r.uniform(0, 120, k), base * r.uniform(0.93, 1.07, k))
        self.label(src, "laundering", "sender", sid, "fan_in")
        self.label(coll, "laundering", "collector", sid, "fan_in")

    def stack(self, sid):
        r = self.rng
        acc = np.r_[self.origin(), self.take(int(r.integers(3, 6)))]
        for t in self.when(int(r.integers(1, 4))):
            amt = self.proceeds()
            for i in range(len(acc) - 1):
                self.pay([acc[i]], [acc[i + 1]], [t], [amt])
                t += r.uniform(1, 60)
                amt *= self.keep()
        self.label(acc[:1], "laundering", "origin", sid, "stack")
        self.label(acc[1:-1], "laundering", "intermediary", sid, "stack")
        self.label(acc[-1:], "laundering", "destination", sid, "stack")

    def bipartite(self, sid):
        r = self.rng
        ns = int(r.integers(2, 5))
        nr = int(r.integers(max(2, 5 - ns), 5))
        s, d = self.take(ns), self.take(nr)
        src, dst = np.repeat(s, nr), np.tile(d, ns)
        keep = r.random(len(src)) < 0.85
        keep[0] = keep[-1] = True
        src, dst = src[keep], dst[keep]
        self.pay(src, dst, self.when() + r.uniform(0, 240, len(src)), np.exp(r.normal(np.log(1000), 0.4, len(src))))
        self.label(s, "laundering", "sender", sid, "bipartite")
        self.label(d, "laundering", "receiver", sid, "bipartite")

    # ------------------------------------------------------------------ look-alikes (hard negatives)
    def salary_split(self, sid, pop):
        """An earner moves similar parts of every salary to own savings and household accounts."""
        r = self.rng
        k = int(r.integers(2, 5))
        earner, own = self.take(1), self.take(k)
        pop.household[own] = pop.household[earner[0]]
        part = float(pop.salary[earner[0]]) * r.uniform(0.12, 0.2)
        for d in range(24, self.ev.days, 30):
            self.pay(
                np.repeat(earner, k), own, d * 24 + 10 + r.uniform(0, 2, k), part * r.uniform(0.97, 1.03, k), "Eigen rekening"
            )
        self.label(np.r_[earner, own], "none", "hard_negative", sid)

    def family_pool(self, sid, pop):
        """Family members pay a similar share into one household account every month, which pays the mortgage."""
        r = self.rng
        k = int(r.integers(3, 6))
        members, pot = self.take(k), self.take(1)
        pop.household[members] = pop.household[pot[0]]
        share = r.uniform(300, 800)
        for d in range(0, self.ev.days, 30):
            self.pay(members, np.repeat(pot, k), d * 24 + r.uniform(8, 60, k), share * r.uniform(0.97, 1.03, k), "Huishoudpot")
        self.label(np.r_[members, pot], "none", "hard_negative", sid)

    def landlord(self, sid):
        """Tenants pay rent to a landlord, who passes most of it to the managing agent within days."""
        r = self.rng
        k = int(r.integers(3, 7))
        tenants, owner, agent = self.take(k), self.take(1), self.take(1)
        rent = r.uniform(700, 1400, k)
        for d in range(0, self.ev.days - 3, 30):
            t = d * 24 + r.uniform(6, 48, k)
            self.pay(tenants, np.repeat(owner, k), t, rent, "Huur")
            self.pay(owner, agent, [t.max() + r.uniform(12, 48)], [rent.sum() * 0.9], "Huur doorbetaling beheer")
        self.label(np.r_[tenants, owner, agent], "none", "hard_negative", sid)


def plant_laundering(
    ev: Events,
    pop,
    rng: np.random.Generator,
    taken: np.ndarray,
    per_kind: int | None = None,
    controllers=(),
    stream: bool = False,
) -> pl.DataFrame:
    """Add laundering patterns and look-alikes to `ev` among persons not in `taken`, some starting from `controllers`
    (population indices of trafficking controllers); return their label rows. `stream`: patterns start throughout the
    span (see the module's docstring)."""
    persons = np.flatnonzero(~pop.is_business)
    free = [int(i) for i in rng.permutation(np.setdiff1d(persons, taken))]
    p = _Planter(ev, rng, free, [int(i) for i in rng.permutation(np.asarray(controllers, dtype=np.int64))])
    per_day = pop.n * PATTERNS_PER_ACCOUNT * (ev.days / DEFAULT_DAYS if stream else 1)
    count = per_kind if per_kind is not None else max(1, int(round(per_day)))
    slots = np.random.default_rng(rng.integers(2**63)) if stream else None  # drawn in stream mode only: default data unchanged
    for kind in PATTERNS:
        if slots is not None:  # one onset per equal slot of the span, in a random order
            onsets = (slots.permutation(count) + slots.random(count)) * ev.days * 24.0 / count
        for i in range(count):
            sid = f"ML-{kind}-{i:03d}"
            if len(p.pool) < 20:
                break
            if slots is not None:
                p.onset = float(onsets[i])
            getattr(p, kind)(sid, pop) if kind == "fan_out" else getattr(p, kind)(sid)
    p.onset = None  # look-alikes run the whole span
    for kind in LOOKALIKES:
        for i in range(count):
            if len(p.pool) < 20:
                break
            sid = f"HN-{kind}-{i:03d}"
            p.landlord(sid) if kind == "landlord" else getattr(p, kind)(sid, pop)
    return pl.DataFrame(
        p.labels,
        schema={
            "acc": pl.Int64,
            "typology": pl.Utf8,
            "role": pl.Utf8,
            "scenario_id": pl.Utf8,
            "pattern": pl.Utf8,
            "own_label": pl.Boolean,
            "onset_day": pl.Int64,
        },
        orient="row",
    )
