"""Planted trafficking scenarios and their legitimate look-alikes.

Each scenario is a few accounts with roles. It draws a subtlety (0 blatant .. 1 subtle, from its
family's range) and shows a subset of the indicators of its typology (schemas/indicators.py),
at least two: the subtler, the fewer, the smaller and the more partial (a subtle controller takes
35-70% of a wage, not all of it). Hard negatives copy surface features of a typology with a lawful
story (seasonal employers, student houses, independent sex workers, night-shift workers, freelancers,
BNPL shoppers, family phone plans, ...); their kind is the label's `lookalike`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schemas.typologies import planted
from synthetic.events import Events, Shifted, minutes
from synthetic.families import LOOKALIKES, Family
from synthetic.population import BNPL as BNPL_PROVIDERS
from synthetic.population import CITIES, Population

RISK_SECTOR_CODES = ("78.20", "01.13", "45.20", "96.02", "81.21", "96.01")
AD_PLATFORMS = [("Kinky.nl", "7311"), ("Sexjobs.nl", "7311"), ("EscortDirectory", "5967"), ("Redlights.nl", "7311")]
LENDERS = ["Snelkrediet NL", "Ferratum", "Qander", "Santander Consumer", "In3", "Klarna", "Freo"]
TOPUP = ["Lebara", "Lycamobile", "Ortel", "Vectone"]
LUXURY = [("5944", "Juwelier Goud"), ("5511", "Auto Prestige"), ("5813", "Club VIP"), ("5651", "Louis Vuitton")]
REMITTERS = ["Western Union", "MoneyGram", "Ria", "WorldRemit"]
VASP = ["Bitvavo", "Coinbase", "Bitonic"]
SOURCE_COUNTRIES = ["NG", "RO", "BG", "CN", "VN", "TH", "UG"]

INDICATORS = {
    "sexual_exploitation": ["client_payments", "ads", "hotels", "night_cash", "topups", "taxi", "depleted"],
    "labour_exploitation": ["crowded", "cash_out", "forward", "device", "rent_to_employer", "pooled_wages"],
    "criminal_exploitation": ["new_account", "many_senders", "cash_out", "crypto", "device"],
    "creditboys": ["loans", "telecom_burst", "forward", "cash_out"],
    "debt_bondage": ["cash_income", "p2p_income", "shared_address", "weekly"],
}
SCENARIO_PREFIX = {
    t.id: t.prefix for t in planted()
}  # the indicator families' prefixes; scenario ids are unique across typologies
SIZES = {"sexual_exploitation": 4, "labour_exploitation": 11, "criminal_exploitation": 6, "creditboys": 4, "debt_bondage": 4}
POSITIVE_SHARE = 0.0015  # planted accounts per typology, as a share of all accounts
HARD_NEGATIVE_SHARE = 0.018


@dataclass
class Scenario:
    id: str
    typology: str
    roles: dict[str, np.ndarray]
    indicators: set[str]
    extra: dict = field(default_factory=dict)


def _take(pool: list[int], k: int) -> np.ndarray:
    out = np.array(pool[:k], dtype=np.int64)
    del pool[:k]
    return out


def _strength(rng, typology: str, subtlety: float | None = None) -> set[str]:
    """A random subset of the typology's indicators; with a subtlety (0 blatant .. 1 subtle) fewer of them,
    so subtle scenarios show only 2-3 indicators."""
    names = INDICATORS[typology]
    if subtlety is None:
        k = int(rng.choice(np.arange(2, len(names) + 1)))
    else:
        k = int(np.clip(np.round(2 + (1 - subtlety) * (len(names) - 2) + rng.normal(0, 0.7)), 2, len(names)))
    return set(rng.choice(names, k, replace=False))


def _lerp(s: float, blatant: tuple[float, float], subtle: tuple[float, float], rng) -> float:
    """A draw between the blatant and the subtle range, by subtlety."""
    lo = blatant[0] + s * (subtle[0] - blatant[0])
    hi = blatant[1] + s * (subtle[1] - blatant[1])
    return float(rng.uniform(min(lo, hi), max(lo, hi)))


def plan(rng: np.random.Generator, pop: Population, fam: Family, scale: float = 1.0) -> tuple[list[Scenario], list[Scenario]]:
    """Choose accounts for scenarios and hard negatives and give them fitting attributes.

    Each scenario draws a subtlety from the family's beta distribution; it sets how many indicators show
    (`_strength`) and, in `scenario_events`, amounts, wage spread and the share passed on. `scale` multiplies the
    number of scenarios (stream mode: more of them, each running only part of the span)."""
    persons = [int(i) for i in rng.permutation(np.flatnonzero(~pop.is_business))]
    businesses = [int(i) for i in rng.permutation(np.flatnonzero(pop.is_business))]
    from synthetic.population import SECTORS

    code_to_sector = {s[0]: i for i, s in enumerate(SECTORS)}
    scenarios: list[Scenario] = []
    for typ, size in SIZES.items():
        count = max(1, int(round(pop.n * POSITIVE_SHARE * scale / size)))
        for s in range(count):
            sid = f"{SCENARIO_PREFIX[typ]}{s:03d}"
            subtle = float(np.round(rng.beta(*fam.subtlety), 3))
            ind = _strength(rng, typ, subtle)
            if typ == "sexual_exploitation":
                ctrl, vic = _take(persons, 1), _take(persons, int(rng.integers(2, 5)))
                pop.gender[ctrl], pop.age[ctrl] = "m", rng.integers(21, 37)
                pop.gender[vic] = "f"
                pop.age[vic] = np.where(
                    rng.random(len(vic)) < 0.8, rng.integers(18, 26, len(vic)), rng.integers(26, 33, len(vic))
                )
                pop.income_kind[vic] = "none"
                pop.income_kind[ctrl] = np.where(rng.random() < 0.5, "none", "benefit")
                scenarios.append(Scenario(sid, typ, {"controller": ctrl, "victim": vic}, ind))
            elif typ == "labour_exploitation":
                emp = _take(businesses, 1)
                owner = _take(persons, 1)
                workers = _take(persons, int(rng.integers(6, 16)))
                pop.sector[emp] = code_to_sector[str(rng.choice(RISK_SECTOR_CODES))]
                nat = rng.choice(["PL", "RO", "BG", "UA", "IN"])
                pop.nationality[workers] = np.where(rng.random(len(workers)) < 0.85, nat, "RO")
                sex = rng.choice(["m", "f"], p=[0.7, 0.3])
                pop.gender[workers] = np.where(rng.random(len(workers)) < 0.85, sex, "m" if sex == "f" else "f")
                pop.age[workers] = rng.integers(20, 46, len(workers))
                pop.income_kind[workers] = "none"
                pop.account_age_days[workers] = rng.integers(20, 500, len(workers))
                pop.employer[workers] = emp[0]
                if "crowded" in ind:
                    homes = workers[: 1 + int(len(workers) > 9)]
                    pop.household[workers] = rng.choice(homes, len(workers))
                    pop.household[homes] = homes
                    pop.city[workers] = pop.city[emp[0]]
                scenarios.append(
                    Scenario(
                        sid,
                        typ,
                        {"employer": emp, "controller": owner, "victim": workers},
                        ind,
                        {"wage": float(np.round(rng.uniform(980, 1250), 0))},
                    )
                )
            elif typ == "criminal_exploitation":
                ctrl, mules = _take(persons, 1), _take(persons, int(rng.integers(3, 8)))
                pop.age[mules] = rng.integers(18, 24, len(mules))
                pop.age[ctrl] = rng.integers(19, 35)
                pop.income_kind[mules] = np.where(rng.random(len(mules)) < 0.5, "student", "none")
                if "new_account" in ind:
                    pop.account_age_days[mules] = rng.integers(5, 170, len(mules))
                scenarios.append(Scenario(sid, typ, {"controller": ctrl, "mule": mules}, ind))
            elif typ == "creditboys":
                ctrl, vic = _take(persons, 1), _take(persons, int(rng.integers(2, 5)))
                pop.age[vic] = rng.integers(18, 26, len(vic))
                pop.age[ctrl] = rng.integers(19, 33)
                pop.income_kind[vic] = np.where(rng.random(len(vic)) < 0.5, "student", "benefit")
                pop.salary[vic] = np.where(pop.income_kind[vic] == "student", 450.0, 1100.0)
                scenarios.append(Scenario(sid, typ, {"controller": ctrl, "victim": vic}, ind))
            else:
                vic = _take(persons, int(rng.integers(3, 6)))
                country = str(rng.choice(SOURCE_COUNTRIES))
                pop.nationality[vic] = country  # victims come from the route's source country
                pop.age[vic] = rng.integers(19, 40, len(vic))
                pop.income_kind[vic] = "none"
                if "shared_address" in ind:
                    pop.household[vic] = vic[0]
                    pop.city[vic] = pop.city[vic[0]]
                scenarios.append(
                    Scenario(
                        sid,
                        typ,
                        {"victim": vic},
                        ind,
                        {
                            "country": country,
                            "beneficiary": f"BEN-{sid}-{country}",
                            "instalment": float(rng.choice([250, 300, 350, 400, 500])),
                        },
                    )
                )
            scenarios[-1].extra["subtlety"] = subtle
    negatives: list[Scenario] = []
    mix = fam.lookalike_mix
    group_size = {"agency": 12, "seasonal_employer": 14, "student_house": 6}
    total = sum(mix.values())
    for kind in LOOKALIKES:
        target = pop.n * HARD_NEGATIVE_SHARE * fam.lookalike_scale * mix[kind] / total
        for s in range(max(1, int(round(target / group_size.get(kind, 1))))):
            sid = f"HN-{kind}-{s:03d}"
            if kind in ("agency", "seasonal_employer"):
                emp, workers = (
                    _take(businesses, 1),
                    _take(persons, int(rng.integers(8, 16) if kind == "agency" else rng.integers(8, 22))),
                )
                pop.age[workers] = rng.integers(20, 50, len(workers))
                pop.employer[workers] = emp[0]
                if kind == "agency":
                    pop.sector[emp] = code_to_sector["78.20"]
                    pop.nationality[workers] = rng.choice(["PL", "RO", "BG"], len(workers))
                    pop.income_kind[workers] = "salary"
                    pop.salary[workers] = np.round(rng.uniform(2000, 2400, len(workers)), 0)
                else:  # a grower housing seasonal workers from one country at a few addresses; they send money home
                    pop.sector[emp] = code_to_sector[str(rng.choice(["01.13", "01.13", "81.21"]))]
                    nat = str(rng.choice(["PL", "RO", "BG", "UA"]))
                    pop.nationality[workers] = np.where(rng.random(len(workers)) < 0.9, nat, "RO")
                    sex = rng.choice(["m", "f"], p=[0.75, 0.25])
                    pop.gender[workers] = np.where(rng.random(len(workers)) < 0.9, sex, "m" if sex == "f" else "f")
                    pop.income_kind[workers] = "none"  # wages paid in hard_negative_events, by the hour
                    pop.account_age_days[workers] = rng.integers(20, 400, len(workers))
                    homes = workers[: int(rng.integers(1, 4))]
                    pop.household[workers] = rng.choice(homes, len(workers))
                    pop.household[homes] = homes
                    pop.city[workers] = pop.city[emp[0]]
                negatives.append(
                    Scenario(
                        sid,
                        "none",
                        {"hard_negative": np.r_[emp, workers]},
                        set(),
                        {"kind": kind, "wage": float(rng.uniform(1500, 2100))},
                    )
                )
            elif kind == "cafe":
                b = _take(businesses, 1)
                pop.sector[b] = code_to_sector["56.30"]
                negatives.append(Scenario(sid, "none", {"hard_negative": b}, set(), {"kind": kind}))
            elif kind == "student_house":  # young tenants at one address, many small transfers, new phone plans
                p = _take(persons, int(rng.integers(4, 9)))
                pop.age[p] = rng.integers(18, 25, len(p))
                pop.income_kind[p] = "student"
                pop.employer[p] = -1
                pop.household[p] = p[0]
                pop.city[p] = pop.city[p[0]]
                negatives.append(Scenario(sid, "none", {"hard_negative": p}, set(), {"kind": kind}))
            else:
                p = _take(persons, 1)
                if kind == "student":
                    pop.age[p], pop.income_kind[p] = rng.integers(18, 24), "student"
                if kind == "remitter":
                    pop.nationality[p] = rng.choice(SOURCE_COUNTRIES)
                if kind == "traveller":
                    pop.income_kind[p], pop.salary[p] = "salary", 4200.0
                if kind == "bnpl_user":
                    pop.age[p] = rng.integers(18, 26)
                if kind == "sex_worker":  # independent, licensed, self-employed: keeps her earnings
                    pop.gender[p], pop.age[p], pop.income_kind[p] = "f", rng.integers(23, 45), "none"
                if kind == "freelancer":
                    pop.income_kind[p] = "none"
                if kind == "night_shift":
                    pop.income_kind[p] = "salary"
                negatives.append(Scenario(sid, "none", {"hard_negative": p}, set(), {"kind": kind}))
    return scenarios, negatives


def stream_scale(days: int, life: int) -> float:
    """How many more scenarios stream mode plants so that as many run on any day as in the default data."""
    return (days + life - 1) / life


def spread_onsets(rng: np.random.Generator, pop: Population, scenarios: list[Scenario], days: int, life: int) -> None:
    """Stream mode: each scenario runs `life` days from an onset; each typology's onsets are spread evenly (one per
    equal slot, in a random order of its scenarios) over [-(life - 1), days), so every month of the data has as many
    scenarios of each kind starting and running as any other. A planted account keeps the age it was drawn at the
    scenario's last day (a mule's account opened for the purpose is new while it is used, not at the end of the data)."""
    first = -(life - 1)
    for typ in SIZES:
        group = [sc for sc in scenarios if sc.typology == typ]
        n = len(group)
        slots = first + ((rng.permutation(n) + rng.random(n)) * (days - first) / max(n, 1)).astype(int)
        for sc, onset in zip(group, slots.tolist()):
            sc.extra["onset"], sc.extra["life"] = onset, life
            for idx in sc.roles.values():
                pop.account_age_days[idx] += max(0, days - (onset + life))  # days since the scenario's last day


def _days(rng, n, days):
    return rng.integers(0, days, n)


def scenario_events(ev: Events, pop: Population, scenarios: list[Scenario], fam: Family) -> None:
    """Bookings of the planted scenarios; subtlety scales volumes and amounts down and the share passed on
    from near-all to the family's partial range (35-70 %). A scenario with an onset (stream mode) books its own
    `life` days from that day on."""
    if any("onset" in sc.extra for sc in scenarios):
        for sc in scenarios:
            _scenario_events(Shifted(ev, sc.extra["onset"], sc.extra["life"]), pop, [sc], fam)
        return
    _scenario_events(ev, pop, scenarios, fam)


def _scenario_events(ev: Events | Shifted, pop: Population, scenarios: list[Scenario], fam: Family) -> None:
    rng, days = ev.rng, ev.days
    males = np.flatnonzero((pop.gender == "m") & ~pop.is_business & (pop.age >= 20))
    persons = np.flatnonzero(~pop.is_business)
    for sc in scenarios:
        ind = sc.indicators
        st = sc.extra.get("subtlety", 0.0)
        vol = 1 - 0.55 * st  # volumes and counts of indicator bookings
        if sc.typology == "sexual_exploitation":
            ctrl, vic = sc.roles["controller"][0], sc.roles["victim"]
            for v in vic:
                city0 = pop.city[v]
                work_cities = (
                    rng.choice(len(CITIES), int(rng.integers(2, 5)), replace=False) if "hotels" in ind else np.array([city0])
                )
                n = int(rng.poisson(days * 0.7 * vol))
                day = _days(rng, n, days)
                night = rng.random(n) < 0.65
                mins = np.where(night, minutes(rng, n, "night"), minutes(rng, n, "evening"))
                amt = np.round(np.exp(rng.normal(np.log(150 * (1 - 0.35 * st)), 0.45, n)) / 10, 0) * 10
                if "client_payments" in ind:
                    senders = np.where(rng.random(n) < 0.5, rng.choice(males, n), -1)
                    inside = senders >= 0
                    alias = np.where(
                        rng.random(n) < 0.25, rng.choice(["(Bambi)", "afspraak", "date 1u", "massage", "(Roxy)"], n), None
                    )
                    ev.transfer(
                        senders[inside],
                        np.full(inside.sum(), v),
                        day[inside],
                        mins[inside],
                        amt[inside],
                        "instant_transfer",
                        description=alias[inside],
                        device_src=senders[inside].astype(str),
                    )
                    ext = ~inside
                    ev.add(
                        np.full(ext.sum(), v),
                        day[ext],
                        mins[ext],
                        "credit",
                        amt[ext],
                        "instant_transfer",
                        cp_ext=np.char.add("XP-", rng.integers(0, 10**7, ext.sum()).astype(str)),
                        cp_type="person",
                        cp_country="NL",
                        description=alias[ext],
                    )
                else:  # clients pay cash, deposited at ATMs in the work cities at night
                    c = rng.choice(work_cities, n)
                    ev.add(np.full(n, v), day, mins, "credit", amt, "cash_deposit", city=CITIES[c], mcc="6011")
                if "ads" in ind:
                    k = int(rng.poisson(days / 30 * 6)) + 2
                    plat = AD_PLATFORMS[int(rng.integers(len(AD_PLATFORMS)))]
                    ev.add(
                        np.full(k, v),
                        _days(rng, k, days),
                        minutes(rng, k, "any"),
                        "debit",
                        rng.choice([3.0, 12.0, 24.0, 9.95, 19.95], k),
                        "card",
                        cp_ext=f"M-{plat[0]}",
                        cp_type="business",
                        cp_name=plat[0],
                        cp_country="NL",
                        mcc=plat[1],
                    )
                if "hotels" in ind:
                    k = int(rng.poisson(days / 30 * 5)) + 2
                    c = rng.choice(work_cities, k)
                    hotel = np.char.add(rng.choice(["Hotel Centraal ", "Budget Inn ", "City Hostel ", "Ibis "], k), CITIES[c])
                    ev.add(
                        np.full(k, v),
                        _days(rng, k, days),
                        minutes(rng, k, "evening"),
                        "debit",
                        np.round(rng.uniform(55, 140, k), 0),
                        "card",
                        cp_ext=np.char.add("M-", hotel),
                        cp_type="business",
                        cp_name=hotel,
                        cp_country="NL",
                        mcc="7011",
                        city=CITIES[c],
                    )
                if "night_cash" in ind:
                    k = int(rng.poisson(days / 30 * 6)) + 2
                    c = rng.choice(work_cities, k)
                    ev.add(
                        np.full(k, v),
                        _days(rng, k, days),
                        minutes(rng, k, "night"),
                        "debit",
                        rng.choice([50.0, 100.0, 150.0, 200.0], k),
                        "cash_withdrawal",
                        mcc="6011",
                        city=CITIES[c],
                    )
                if "topups" in ind:
                    k = int(rng.poisson(days / 30 * 9)) + 2
                    t = rng.choice(TOPUP, k)
                    ev.add(
                        np.full(k, v),
                        _days(rng, k, days),
                        minutes(rng, k, "any"),
                        "debit",
                        rng.choice([10.0, 15.0, 20.0], k),
                        "card",
                        cp_ext=np.char.add("M-", t),
                        cp_type="business",
                        cp_name=t,
                        cp_country="NL",
                        mcc="4814",
                    )
                if "taxi" in ind:
                    k = int(rng.poisson(days / 30 * 18))
                    ev.add(
                        np.full(k, v),
                        _days(rng, k, days),
                        minutes(rng, k, "night"),
                        "debit",
                        np.round(rng.uniform(12, 45, k), 2),
                        "card",
                        cp_ext="M-Uber",
                        cp_type="business",
                        cp_name=rng.choice(["Uber", "Bolt"]),
                        cp_country="NL",
                        mcc="4121",
                        city=CITIES[rng.choice(work_cities, k)],
                    )
                # earnings go to the controller, the next day or the same night (SE-08/SE-09)
                share = (
                    _lerp(st, (0.75, 0.95), fam.pass_on, rng) if "depleted" in ind else _lerp(st, (0.45, 0.75), fam.pass_on, rng)
                )
                per_day = np.bincount(day, weights=amt, minlength=days)
                d = np.flatnonzero(per_day > 0)
                if st > 0.5:  # a subtle controller collects every few days, not every night
                    every = int(rng.integers(2, 6))
                    per_day = np.bincount(d // every * every, weights=per_day[d], minlength=days)
                    d = np.flatnonzero(per_day > 0)
                lag = rng.integers(0, 2 + int(3 * st), len(d))
                ev.transfer(
                    np.full(len(d), v),
                    np.full(len(d), ctrl),
                    d + lag,
                    minutes(rng, len(d), "day"),
                    np.round(per_day[d] * share, 0),
                    "instant_transfer",
                    device_src=str(v),
                )
            if "ads" in ind or rng.random() < 0.5:  # controller buys premium ads and pays for luxury
                k = int(rng.poisson(days / 30 * 4)) + 1
                ev.add(
                    np.full(k, ctrl),
                    _days(rng, k, days),
                    minutes(rng, k, "any"),
                    "debit",
                    rng.uniform(40, 250, k),
                    "card",
                    cp_ext="M-Kinky.nl",
                    cp_type="business",
                    cp_name="Kinky.nl",
                    cp_country="NL",
                    mcc="7311",
                )
            k = int(rng.poisson(days / 30 * 4)) + 1
            lux = rng.integers(0, len(LUXURY), k)
            ev.add(
                np.full(k, ctrl),
                _days(rng, k, days),
                minutes(rng, k, "day"),
                "debit",
                np.exp(rng.normal(np.log(900), 0.6, k)),
                "card",
                cp_ext=np.char.add("M-", np.array([LUXURY[i][1] for i in lux])),
                cp_type="business",
                cp_name=np.array([LUXURY[i][1] for i in lux]),
                cp_country="NL",
                mcc=np.array([LUXURY[i][0] for i in lux]),
            )
        elif sc.typology == "labour_exploitation":
            emp, owner, workers = sc.roles["employer"][0], sc.roles["controller"][0], sc.roles["victim"]
            wage = sc.extra["wage"]
            shared_device = f"{emp}-phone"
            pay = [d for d in range(days) if (d % 30) == 24] or [days - 1]
            spread = 0.2 * st  # a subtle employer varies wages (hours) like a real one
            pass_on = (0.5, 0.7) if st < 0.5 else fam.pass_on
            # LE-03, employer side: several workers' wages paid into a few accounts the owner picked
            pooled = "pooled_wages" in ind
            holders = workers[: max(1, len(workers) // 4)] if pooled else workers
            n = len(workers)
            for d in pay:
                w = np.round(wage * np.clip(1 + spread * rng.standard_normal(n), 0.6, 1.5), 2)
                into = holders[np.arange(n) % len(holders)]
                ev.transfer(
                    np.full(n, emp),
                    into,
                    np.full(n, d),
                    minutes(rng, n, "office"),
                    w,
                    "transfer",
                    description="Loon",
                    src_type="business",
                    src_name="Uitzendbureau",
                )
                got = np.bincount(np.searchsorted(np.sort(holders), into), weights=w, minlength=len(holders))
                recv = np.sort(holders)
                h = len(recv)
                if "cash_out" in ind:
                    lag = rng.integers(0, 2 + int(2 * st), h)
                    ev.add(
                        recv,
                        d + lag,
                        minutes(rng, h, "day"),
                        "debit",
                        np.round(got * _lerp(st, (0.85, 1.0), pass_on, rng), -1),
                        "cash_withdrawal",
                        mcc="6011",
                        city=CITIES[pop.city[emp]],
                    )
                if "forward" in ind:
                    lag = rng.integers(0, 2 + int(3 * st), h)
                    ev.transfer(
                        recv,
                        np.full(h, owner),
                        d + lag,
                        minutes(rng, h, "day"),
                        np.round(got * rng.uniform(*pass_on, h), 0),
                        "transfer",
                        description=rng.choice(["huisvesting", "kosten", None]),
                        device_src=shared_device if "device" in ind else recv.astype(str),
                    )
                if "rent_to_employer" in ind:
                    ev.transfer(
                        workers,
                        np.full(n, owner),
                        d + 2,
                        minutes(rng, n, "office"),
                        np.round(rng.uniform(300, 450) * np.ones(n), 0),
                        "transfer",
                        description="huur kamer",
                        device_src=shared_device if "device" in ind else workers.astype(str),
                    )
                if "device" in ind:  # the employer's phone runs the workers' online banking
                    ev.add(
                        workers,
                        d + rng.integers(0, 3, n),
                        minutes(rng, n, "day"),
                        "debit",
                        np.round(rng.uniform(20, 80, n), 2),
                        "transfer",
                        cp_ext="DD-Odido",
                        cp_type="business",
                        cp_name="Odido",
                        cp_country="NL",
                        device=shared_device,
                    )
            # the employer's other costs: no normal payroll tax, lodging and vans for the workers
            k = int(rng.poisson(days / 30 * 3)) + 1
            ev.add(
                np.full(k, emp),
                _days(rng, k, days),
                minutes(rng, k, "office"),
                "debit",
                rng.uniform(300, 900, k),
                "card",
                cp_ext="M-Hotel Westland",
                cp_type="business",
                cp_name="Pension Westland",
                cp_country="NL",
                mcc="7011",
            )
        elif sc.typology == "criminal_exploitation":
            ctrl, mules = sc.roles["controller"][0], sc.roles["mule"]
            for m in mules:
                start = int(rng.integers(0, max(1, days - 28)))
                span = int(rng.integers(10, 28))
                n = max(2, int((rng.integers(6, 20) if "many_senders" in ind else rng.integers(3, 6)) * vol))
                day = start + rng.integers(0, span, n)
                senders = rng.choice(persons, n)
                amt = np.round(np.exp(rng.normal(np.log(450 * (1 - 0.4 * st)), 0.6, n)), 0)
                mins = minutes(rng, n, "day")
                ev.transfer(
                    senders,
                    np.full(n, m),
                    day,
                    mins,
                    amt,
                    rng.choice(["transfer", "instant_transfer"], n),
                    description=rng.choice(["Marktplaats", "betaling", "iPhone", "PS5", None], n),
                )
                out_share = _lerp(st, (0.85, 0.98), (0.5, 0.85), rng)
                dev = f"{ctrl}-mulephone" if "device" in ind else str(m)
                if "cash_out" in ind:
                    ev.add(
                        np.full(n, m),
                        day,
                        np.minimum(mins + rng.integers(20, 300, n), 1439),
                        "debit",
                        np.round(amt * out_share, -1),
                        "cash_withdrawal",
                        mcc="6011",
                        city=CITIES[rng.choice(len(CITIES), n)],
                    )
                elif "crypto" in ind:
                    v = rng.choice(VASP)
                    ev.add(
                        np.full(n, m),
                        day,
                        np.minimum(mins + rng.integers(5, 200, n), 1439),
                        "debit",
                        np.round(amt * out_share, 0),
                        "transfer",
                        cp_ext=f"M-{v}",
                        cp_type="business",
                        cp_name=v,
                        cp_country="NL",
                        mcc="6051",
                        device=dev,
                    )
                else:
                    ev.transfer(
                        np.full(n, m),
                        np.full(n, ctrl),
                        day,
                        np.minimum(mins + rng.integers(5, 200, n), 1439),
                        np.round(amt * out_share, 0),
                        "instant_transfer",
                        device_src=dev,
                    )
                if "cash_out" in ind or "crypto" in ind:  # the controller still takes a cut
                    ev.transfer(
                        np.array([m]),
                        np.array([ctrl]),
                        np.array([start + span]),
                        minutes(rng, 1, "evening"),
                        np.array([np.round(amt.sum() * 0.1, 0)]),
                        "instant_transfer",
                        device_src=dev,
                    )
        elif sc.typology == "creditboys":
            ctrl, vic = sc.roles["controller"][0], sc.roles["victim"]
            for v in vic:
                start = int(rng.integers(0, max(1, days - 30)))
                if "loans" in ind or "telecom_burst" not in ind:
                    k = int(rng.integers(2, 5)) if st < 0.6 else int(rng.integers(1, 3))
                    lenders = rng.choice(LENDERS, k, replace=False)
                    day = start + rng.integers(0, 21, k)
                    amt = np.round(rng.uniform(600, 3000 - 1800 * st, k), -1)
                    ev.add(
                        np.full(k, v),
                        day,
                        minutes(rng, k, "office"),
                        "credit",
                        amt,
                        "loan_disbursement",
                        cp_ext=np.char.add("LEND-", lenders),
                        cp_type="business",
                        cp_name=lenders,
                        cp_country="NL",
                        description="Uitbetaling lening",
                    )
                    lag = rng.integers(0, 2, k)
                    share = np.array([_lerp(st, (0.7, 0.95), fam.pass_on, rng) for _ in range(k)])
                    if "cash_out" in ind:  # part withdrawn and handed over in cash, the rest transferred
                        ev.add(
                            np.full(k, v),
                            day + lag,
                            minutes(rng, k, "day"),
                            "debit",
                            np.round(amt * share * 0.5, -1),
                            "cash_withdrawal",
                            mcc="6011",
                            city=CITIES[pop.city[v]],
                        )
                        share = share * 0.5
                    ev.transfer(
                        np.full(k, v),
                        np.full(k, ctrl),
                        day + lag,
                        minutes(rng, k, "evening"),
                        np.round(amt * share, 0),
                        "instant_transfer",
                        device_src=str(v),
                    )
                if "telecom_burst" in ind:
                    k = int(rng.integers(2, 5)) if st < 0.6 else 2
                    telcos = rng.choice(["KPN", "Vodafone", "Odido", "Ben", "Simyo", "Tele2"], k, replace=False)
                    first = start + rng.integers(0, 10, k)
                    amt = np.round(rng.uniform(45, 85, k), 2)
                    for m in range(4):
                        ev.add(
                            np.full(k, v),
                            first + 30 * m,
                            minutes(rng, k, "office"),
                            "debit",
                            amt,
                            "direct_debit",
                            cp_ext=np.char.add("DD-", telcos),
                            cp_type="business",
                            cp_name=telcos,
                            cp_country="NL",
                            mcc="4814",
                            description=np.where(m == 0, "Nieuw abonnement toestel", "Abonnement toestel"),
                        )
                    # the victim hands the phones over; the controller resells them to private buyers
                    buyers = rng.choice(persons, k)
                    ev.transfer(
                        buyers,
                        np.full(k, ctrl),
                        first + rng.integers(1, 6, k),
                        minutes(rng, k, "evening"),
                        np.round(rng.uniform(250, 700, k), 0),
                        "instant_transfer",
                        description=rng.choice(["iPhone", "Samsung", "telefoon", None], k),
                    )
                    if "forward" in ind:  # and keeps a hold: a small payment now and then
                        ev.transfer(
                            np.array([ctrl]),
                            np.array([v]),
                            np.array([start + 2]),
                            minutes(rng, 1, "evening"),
                            np.array([50.0]),
                            "instant_transfer",
                        )
        else:  # debt bondage along a migration route
            vic = sc.roles["victim"]
            ben, country, inst = sc.extra["beneficiary"], sc.extra["country"], sc.extra["instalment"]
            step = 7 if "weekly" in ind else 30
            inst = float(np.round(inst * (1 - 0.5 * st), -1))
            remitter = str(rng.choice(REMITTERS))
            for v in vic:
                first = int(rng.integers(0, step))
                d = np.arange(first, days, step)
                n = len(d)
                income = inst * n * 1.25 + 600
                k = int(rng.integers(6, 14))
                inc_day = rng.integers(0, days, k)
                if "cash_income" in ind or "p2p_income" not in ind:
                    ev.add(
                        np.full(k, v),
                        inc_day,
                        minutes(rng, k, "evening"),
                        "credit",
                        np.round(np.full(k, income / k), -1),
                        "cash_deposit",
                        mcc="6011",
                        city=CITIES[pop.city[v]],
                    )
                else:
                    senders = rng.choice(persons, k)
                    ev.transfer(
                        senders,
                        np.full(k, v),
                        inc_day,
                        minutes(rng, k, "evening"),
                        np.round(np.full(k, income / k), 0),
                        "instant_transfer",
                    )
                ev.add(
                    np.full(n, v),
                    d,
                    minutes(rng, n, "day"),
                    "debit",
                    np.full(n, inst),
                    "money_remittance",
                    cp_ext=ben,
                    cp_type="person",
                    cp_name=remitter,
                    cp_country=country,
                    description="family",
                )


def hard_negative_events(ev: Events, pop: Population, negatives: list[Scenario]) -> None:
    rng, days = ev.rng, ev.days
    persons = np.flatnonzero(~pop.is_business)
    for sc in negatives:
        kind = sc.extra.get("kind")
        p = sc.roles["hard_negative"][0]
        if kind == "traveller":  # business trips: many hotel nights in many cities, pricier, daytime
            k = int(rng.poisson(days / 30 * 6)) + 3
            c = rng.choice(len(CITIES), k)
            hotel = np.char.add(rng.choice(["NH Hotel ", "Van der Valk ", "Hilton "], k), CITIES[c])
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "day"),
                "debit",
                np.round(rng.uniform(110, 260, k), 2),
                "card",
                cp_ext=np.char.add("M-", hotel),
                cp_type="business",
                cp_name=hotel,
                cp_country="NL",
                mcc="7011",
                city=CITIES[c],
            )
            k2 = int(rng.poisson(days / 30 * 10))
            ev.add(
                np.full(k2, p),
                _days(rng, k2, days),
                minutes(rng, k2, "day"),
                "debit",
                np.round(rng.uniform(15, 50, k2), 2),
                "card",
                cp_ext="M-Uber",
                cp_type="business",
                cp_name="Uber",
                cp_country="NL",
                mcc="4121",
                city=CITIES[rng.choice(len(CITIES), k2)],
            )
        elif kind == "landlord":  # several tenants pay a fixed rent monthly
            tenants = rng.choice(persons, int(rng.integers(3, 7)), replace=False)
            rent = np.round(rng.uniform(650, 1100, len(tenants)), 0)
            for d in range(0, days, 30):
                ev.transfer(
                    tenants,
                    np.full(len(tenants), p),
                    np.full(len(tenants), d) + rng.integers(0, 4, len(tenants)),
                    minutes(rng, len(tenants), "office"),
                    rent,
                    "transfer",
                    description="huur",
                )
        elif kind == "remitter":  # a migrant sends varying small sums home to family
            d = np.arange(int(rng.integers(0, 30)), days, 30)
            ev.add(
                np.full(len(d), p),
                d,
                minutes(rng, len(d), "day"),
                "debit",
                np.round(rng.uniform(80, 250, len(d)), 0),
                "money_remittance",
                cp_ext=f"FAM-{p}",
                cp_type="person",
                cp_name=str(rng.choice(REMITTERS)),
                cp_country=str(pop.nationality[p]) if pop.nationality[p] != "NL" else "MA",
                description="family",
            )
        elif kind == "student":  # many small Tikkie payments from friends, daytime and evening
            k = int(rng.poisson(days / 30 * 14))
            src = rng.choice(persons, k)
            ev.transfer(
                src,
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "evening"),
                np.round(rng.uniform(3, 40, k), 2),
                "instant_transfer",
                description="Tikkie",
            )
        elif kind == "family_phones":  # a family with four long-standing phone contracts
            for t in rng.choice(["KPN", "Vodafone", "Odido"], 3):
                for d in range(int(rng.integers(0, 30)), days, 30):
                    ev.add(
                        np.array([p]),
                        np.array([d]),
                        minutes(rng, 1, "office"),
                        "debit",
                        np.array([30.0]),
                        "direct_debit",
                        cp_ext=f"DD-{t}",
                        cp_type="business",
                        cp_name=t,
                        cp_country="NL",
                        mcc="4814",
                        description="Abonnement",
                    )
        elif kind == "night_shift":  # a nurse or security guard withdraws cash, eats and takes taxis at night
            k = int(rng.poisson(days / 30 * 5)) + 2
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "night"),
                "debit",
                rng.choice([50.0, 100.0], k),
                "cash_withdrawal",
                mcc="6011",
                city=CITIES[pop.city[p]],
            )
            k = int(rng.poisson(days / 30 * 6))
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "night"),
                "debit",
                np.round(rng.uniform(12, 40, k), 2),
                "card",
                cp_ext="M-Uber",
                cp_type="business",
                cp_name=str(rng.choice(["Uber", "Bolt", "TCA Taxi"])),
                cp_country="NL",
                mcc="4121",
                city=CITIES[pop.city[p]],
            )
            k = int(rng.poisson(days / 30 * 8))
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "night"),
                "debit",
                np.round(rng.uniform(4, 25, k), 2),
                "card",
                cp_ext="M-FEBO",
                cp_type="business",
                cp_name="FEBO",
                cp_country="NL",
                mcc="5814",
                city=CITIES[pop.city[p]],
            )
        elif kind in ("agency", "seasonal_employer"):
            if kind == "agency":
                continue  # paid as ordinary employees by the background
            emp, workers = sc.roles["hard_negative"][0], sc.roles["hard_negative"][1:]
            n = len(workers)
            home = str(pop.nationality[workers[0]])
            for d in range(24 - int(rng.integers(0, 10)), days, 30):  # hourly wages, net of legal housing deduction
                w = np.round(sc.extra["wage"] * np.clip(1 + 0.15 * rng.standard_normal(n), 0.6, 1.5), 2)
                ev.transfer(
                    np.full(n, emp),
                    workers,
                    np.full(n, d),
                    minutes(rng, n, "office"),
                    w,
                    "transfer",
                    description="Loon incl. inhouding huisvesting",
                    src_type="business",
                    src_name="Kwekerij",
                )
                cash = rng.random(n) < 0.5
                ev.add(
                    workers[cash],
                    d + rng.integers(0, 3, int(cash.sum())),
                    minutes(rng, int(cash.sum()), "day"),
                    "debit",
                    np.round(w[cash] * rng.uniform(0.2, 0.5, int(cash.sum())), -1),
                    "cash_withdrawal",
                    mcc="6011",
                    city=CITIES[pop.city[emp]],
                )
                # each worker sends a fixed sum home to their own family, monthly
                fixed = np.round(300 + 100 * (workers % 4), 0)
                ev.add(
                    workers,
                    d + rng.integers(1, 4, n),
                    minutes(rng, n, "evening"),
                    "debit",
                    fixed,
                    "money_remittance",
                    cp_ext=np.char.add("FAM-", workers.astype(str)),
                    cp_type="person",
                    cp_name=str(rng.choice(REMITTERS)),
                    cp_country=home,
                    description="family",
                )
            k = int(rng.poisson(days / 30 * 2)) + 1  # the grower pays a certified housing provider
            ev.add(
                np.full(k, emp),
                _days(rng, k, days),
                minutes(rng, k, "office"),
                "debit",
                np.round(rng.uniform(2000, 6000, k), 2),
                "transfer",
                cp_ext="HUISV-SNF",
                cp_type="business",
                cp_name="Huisvesting Arbeidsmigranten BV",
                cp_country="NL",
                description="Huisvesting",
            )
        elif kind == "student_house":  # housemates split groceries and bills; some start a new phone plan in the window
            mates = sc.roles["hard_negative"]
            k = int(rng.poisson(days / 30 * 10 * len(mates)))
            src, dst = rng.choice(mates, k), rng.choice(mates, k)
            ok = src != dst
            ev.transfer(
                src[ok],
                dst[ok],
                _days(rng, int(ok.sum()), days),
                minutes(rng, int(ok.sum()), "evening"),
                np.round(rng.uniform(2, 45, int(ok.sum())), 2),
                "instant_transfer",
                description=rng.choice(["Tikkie", "boodschappen", "energie", None], int(ok.sum())),
            )
            new = mates[rng.random(len(mates)) < 0.5]
            for v in new:
                telcos = rng.choice(["Simyo", "Ben", "Youfone", "Lebara", "Odido"], int(rng.integers(1, 3)), replace=False)
                first = int(rng.integers(7, max(8, days - 30)))
                for m in range(4):
                    ev.add(
                        np.full(len(telcos), v),
                        first + rng.integers(0, 10, len(telcos)) + 30 * m,
                        minutes(rng, len(telcos), "office"),
                        "debit",
                        np.round(rng.uniform(8, 25, len(telcos)), 2),
                        "direct_debit",
                        cp_ext=np.char.add("DD-", telcos),
                        cp_type="business",
                        cp_name=telcos,
                        cp_country="NL",
                        mcc="4814",
                        description="Nieuw abonnement" if m == 0 else "Abonnement",
                    )
        elif kind == "sex_worker":  # licensed, independent: clients pay her, she advertises, pays tax and saves
            n = int(rng.poisson(days * 0.5))
            night = rng.random(n) < 0.5
            mins = np.where(night, minutes(rng, n, "night"), minutes(rng, n, "evening"))
            inside = rng.random(n) < 0.5
            senders = rng.choice(persons, n)
            amt = np.round(rng.uniform(80, 250, n), -1)
            day = _days(rng, n, days)
            ev.transfer(
                senders[inside],
                np.full(int(inside.sum()), p),
                day[inside],
                mins[inside],
                amt[inside],
                "instant_transfer",
                description=rng.choice(["afspraak", None], int(inside.sum())),
            )
            ext = ~inside
            ev.add(
                np.full(int(ext.sum()), p),
                day[ext],
                mins[ext],
                "credit",
                amt[ext],
                "cash_deposit",
                mcc="6011",
                city=CITIES[pop.city[p]],
            )
            plat = AD_PLATFORMS[int(rng.integers(len(AD_PLATFORMS)))]
            k = int(rng.poisson(days / 30 * 3)) + 1
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "any"),
                "debit",
                rng.choice([12.0, 24.0, 19.95], k),
                "card",
                cp_ext=f"M-{plat[0]}",
                cp_type="business",
                cp_name=plat[0],
                cp_country="NL",
                mcc=plat[1],
            )
            k = int(rng.poisson(days / 30 * 1.5))
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "evening"),
                "debit",
                np.round(rng.uniform(70, 140, k), 0),
                "card",
                cp_ext="M-Hotel Centraal",
                cp_type="business",
                cp_name="Hotel Centraal",
                cp_country="NL",
                mcc="7011",
            )
            for d in range(int(rng.integers(20, 30)), days, 30):
                ev.add(
                    np.array([p]),
                    np.array([d]),
                    minutes(rng, 1, "office"),
                    "debit",
                    np.array([float(np.round(amt.sum() / days * 30 * 0.25, -1))]),
                    "transfer",
                    cp_ext="GOV-BELASTINGDIENST",
                    cp_type="business",
                    cp_name="Belastingdienst",
                    cp_country="NL",
                    description="Voorlopige aanslag IB",
                )
        elif kind == "freelancer":  # a hairdresser, tutor or cleaner paid by many private customers
            k = int(rng.poisson(days / 30 * rng.uniform(15, 40)))
            senders = rng.choice(persons, k)
            ev.transfer(
                senders,
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "day"),
                np.round(rng.uniform(20, 120, k), 0),
                rng.choice(["transfer", "instant_transfer"], k),
                description=rng.choice(["factuur", "les", "knippen", "schoonmaak", None], k),
            )
            k = int(rng.poisson(days / 30 * 2))
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "day"),
                "debit",
                rng.choice([50.0, 100.0, 200.0], k),
                "cash_withdrawal",
                mcc="6011",
                city=CITIES[pop.city[p]],
            )
        elif kind == "bnpl_user":  # a young shopper: buy-now-pay-later at several providers, refunds, one consumer loan
            for prov, country in rng.permutation(np.array(BNPL_PROVIDERS))[: int(rng.integers(2, 4))]:
                d = int(rng.integers(0, max(1, days - 10)))
                price = float(np.round(rng.uniform(60, 400), 2))
                ev.add(
                    np.full(3, p),
                    d + 30 * np.arange(3),
                    minutes(rng, 3, "office"),
                    "debit",
                    np.full(3, np.round(price / 3, 2)),
                    "direct_debit",
                    cp_ext=f"BNPL-{prov}",
                    cp_type="business",
                    cp_name=prov,
                    cp_country=country,
                    description="termijn",
                )
                ev.add(
                    np.array([p]),
                    np.array([d + int(rng.integers(5, 20))]),
                    minutes(rng, 1, "office"),
                    "credit",
                    np.array([price]),
                    "transfer",
                    cp_ext=f"BNPL-{prov}",
                    cp_type="business",
                    cp_name=prov,
                    cp_country=country,
                    description="Terugbetaling retour",
                )
            d = int(rng.integers(0, max(1, days - 3)))
            ev.add(
                np.array([p]),
                np.array([d]),
                minutes(rng, 1, "office"),
                "credit",
                np.array([1200.0]),
                "loan_disbursement",
                cp_ext="LEND-In3",
                cp_type="business",
                cp_name="In3",
                cp_country="NL",
            )
            ev.add(
                np.array([p]),
                np.array([d + 1]),
                minutes(rng, 1, "day"),
                "debit",
                np.array([1150.0]),
                "card",
                cp_ext="M-Coolblue",
                cp_type="business",
                cp_name="Coolblue",
                cp_country="NL",
                mcc="5732",
            )
        elif kind == "cafe":  # cash-intensive cafe: daily cash deposits
            k = int(rng.poisson(days * 0.8))
            ev.add(
                np.full(k, p),
                _days(rng, k, days),
                minutes(rng, k, "evening"),
                "credit",
                np.round(rng.uniform(200, 900, k), -1),
                "cash_deposit",
                city=CITIES[pop.city[p]],
            )
