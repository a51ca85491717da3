"""A retail population of persons and businesses, and their ordinary banking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.events import Cat, Events, minutes
from synthetic.families import Family

CITIES = np.array(
    [
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
        "Apeldoorn",
        "Haarlem",
        "Arnhem",
        "Enschede",
        "Amersfoort",
        "Zaanstad",
        "'s-Hertogenbosch",
        "Zwolle",
        "Leiden",
        "Maastricht",
        "Westland",
        "Venlo",
    ]
)
CITY_WEIGHTS = np.array([14, 10, 8, 6, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2], dtype=float)
POSTCODE_AREA = np.array([10, 30, 25, 35, 56, 97, 50, 13, 48, 65, 73, 20, 68, 75, 38, 15, 52, 80, 23, 62, 26, 59])

NATIONALITIES = np.array(["NL", "PL", "RO", "BG", "DE", "TR", "MA", "SR", "GB", "NG", "CN", "VN", "UA", "BE", "IN", "SY"])
NAT_WEIGHTS = np.array([80, 3, 2, 1.5, 2, 2, 2, 1, 0.5, 0.5, 0.7, 0.3, 1.2, 1, 1, 1], dtype=float)

# sector code, weight, card-acquiring (takings by card), cash-intensive
SECTORS = [
    ("47.11", 12, True, False),
    ("56.10", 10, True, True),
    ("56.30", 6, True, True),
    ("41.20", 8, False, False),
    ("62.01", 10, False, False),
    ("70.22", 10, False, False),
    ("78.20", 5, False, False),
    ("45.20", 3, True, True),
    ("96.02", 5, True, True),
    ("01.13", 4, False, False),
    ("81.21", 5, False, False),
    ("49.41", 5, False, False),
    ("55.10", 3, True, False),
    ("96.01", 2, True, True),
    ("86.23", 4, True, False),
    ("47.71", 8, True, False),
]

# card spending: mcc, weight, median amount, merchant names
CARD_MIX = [
    ("5411", 34, 28, ["Albert Heijn", "Jumbo", "Lidl", "Aldi", "Plus"]),
    ("5812", 6, 35, ["Restaurant De Kroon", "Brasserie Noord", "Pizzeria Roma"]),
    ("5814", 9, 11, ["McDonald's", "Burger King", "FEBO", "Subway"]),
    ("5541", 7, 55, ["Shell", "BP", "Tango", "TotalEnergies"]),
    ("5912", 5, 16, ["Kruidvat", "Etos", "Apotheek"]),
    ("5651", 5, 45, ["H&M", "Zara", "C&A", "Primark"]),
    ("5311", 4, 30, ["HEMA", "Action", "Bijenkorf"]),
    ("4111", 6, 9, ["NS", "GVB", "RET", "Arriva"]),
    ("5999", 5, 25, ["Bol.com", "Coolblue", "Blokker"]),
    ("5813", 4, 22, ["Cafe 't Hoekje", "Bar Central", "Club Paradiso"]),
    ("5977", 2, 24, ["Douglas", "Rituals"]),
    ("4121", 1.5, 21, ["Uber", "Bolt", "TCA Taxi"]),
    ("7011", 0.6, 120, ["Hotel Centraal", "Van der Valk", "NH Hotel", "Ibis"]),
    ("5815", 3, 11, ["Netflix", "Spotify", "Apple.com", "Google Play"]),
    ("7997", 1.5, 30, ["Basic-Fit", "SportCity"]),
    ("5462", 4, 8, ["Bakkerij Bart", "Bakker Bart"]),
]

TELCOS = np.array(["KPN", "Vodafone", "Odido", "Ben", "Simyo", "Lebara", "Lycamobile", "Youfone"])
ENERGY = np.array(["Eneco", "Vattenfall", "Essent", "Greenchoice"])
INSURERS = np.array(["Zilveren Kruis", "CZ", "VGZ", "Menzis"])
BROADBAND = np.array(["Ziggo", "KPN Internet", "Odido Thuis", "Delta Fiber"])
BNPL = [("Klarna", "SE"), ("Riverty", "DE"), ("In3", "NL"), ("Afterpay", "NL")]
HOUSING = np.array(["Woonstichting De Key", "Ymere", "Vestia", "Portaal", "Hypotheek ING", "Hypotheek Rabobank"])


@dataclass
class Population:
    n: int
    is_business: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    nationality: np.ndarray
    city: np.ndarray  # index into CITIES
    household: np.ndarray  # address group
    account_age_days: np.ndarray
    sector: np.ndarray  # index into SECTORS, -1 for persons
    employer: np.ndarray  # population index of employer business, -1 external/none
    income_kind: np.ndarray  # salary | student | pension | benefit | self | none
    salary: np.ndarray
    device: np.ndarray  # device index
    phone: np.ndarray  # phone index
    bank: np.ndarray


def make_population(rng: np.random.Generator, n: int, banks: int, fam: Family) -> Population:
    is_business = rng.random(n) < 0.08
    persons = np.flatnonzero(~is_business)
    age = np.clip(rng.gamma(6.0, 7.5, n) + 16, 18, 95).astype(int)
    gender = rng.choice(np.array(["f", "m", "x"]), n, p=[0.495, 0.495, 0.01])
    nat_w = np.where(NATIONALITIES == "NL", NAT_WEIGHTS, NAT_WEIGHTS * fam.migrant_scale)
    nationality = rng.choice(NATIONALITIES, n, p=nat_w / nat_w.sum())
    city = rng.choice(len(CITIES), n, p=CITY_WEIGHTS / CITY_WEIGHTS.sum())
    # households of 1-4 persons share an address (and a city)
    household = np.arange(n)
    size = rng.choice([1, 2, 3, 4], len(persons), p=list(fam.household_p))
    ends = np.cumsum(size)
    group = np.searchsorted(ends, np.arange(len(persons)), side="right")
    household[persons] = persons[np.r_[0, ends][group]]
    city[persons] = city[household[persons]]
    account_age_days = np.clip(rng.exponential(2900, n), 1, 40 * 365).astype(int)
    new = rng.random(n) < 0.04
    account_age_days[new] = rng.integers(1, 180, new.sum())
    sector_w = np.array([s[1] for s in SECTORS], dtype=float)
    sector = np.where(is_business, rng.choice(len(SECTORS), n, p=sector_w / sector_w.sum()), -1)
    age[is_business] = 0
    businesses = np.flatnonzero(is_business)
    income_kind = np.full(n, "salary", dtype=object)
    income_kind[age >= 67] = "pension"
    student = (age <= 24) & (rng.random(n) < 0.55)
    income_kind[student] = "student"
    income_kind[(age < 67) & ~student & (rng.random(n) < 0.07)] = "benefit"
    income_kind[(age < 67) & ~student & (rng.random(n) < 0.06)] = "self"
    income_kind[is_business] = "none"
    salary = np.round(np.exp(rng.normal(np.log(2500), 0.33, n)), -1)
    for kind, lo, hi in (("pension", 1300, 2200), ("student", 300, 900), ("benefit", 1050, 1350)):
        m = income_kind == kind
        salary[m] = np.round(rng.uniform(lo, hi, m.sum()), 0)
    employer = np.full(n, -1)
    employed = np.flatnonzero((income_kind == "salary") | (income_kind == "student"))
    inside = employed[rng.random(len(employed)) < 0.45]
    if len(businesses):
        employer[inside] = rng.choice(businesses, len(inside))
    device = np.arange(n)
    shared_tablet = (rng.random(n) < 0.06) & ~is_business
    device[shared_tablet] = household[shared_tablet]
    phone = np.arange(n)
    bank = rng.integers(0, banks, n)
    return Population(
        n,
        is_business,
        age,
        gender,
        nationality,
        city,
        household,
        account_age_days,
        sector,
        employer,
        income_kind,
        salary,
        device,
        phone,
        bank,
    )


def month_days(days: int, day_of_month: int, start_dom: int) -> np.ndarray:
    """Window day indices that fall on a given day of the month (start_dom: day of month of day 0)."""
    d = np.arange(days)
    dom = (start_dom - 1 + d) % 30 + 1
    return d[dom == day_of_month]


def background(ev: Events, pop: Population, start_dom: int, fam: Family) -> None:
    """Salaries, rent, direct debits, card spending at home and abroad, cash, households, friends, BNPL, savings, business flows."""
    rng, days = ev.rng, ev.days
    persons = np.flatnonzero(~pop.is_business)
    businesses = np.flatnonzero(pop.is_business)
    months = max(1, days // 30)

    # income: wages on the employer's pay day (family: 20th-30th), varying month to month for shift and hourly
    # workers; pensions, student grants, benefits on fixed days
    earners = persons[np.isin(pop.income_kind[persons], ("salary", "student"))]
    wage_sd = np.where(rng.random(len(earners)) < fam.variable_wage_share, rng.uniform(*fam.wage_spread, len(earners)), 0.0)
    emp = pop.employer[earners]
    doms = np.array(fam.pay_doms)
    pay_dom = np.where(emp >= 0, doms[np.maximum(emp, 0) % len(doms)], doms[(earners // 7) % len(doms)])
    inside = emp >= 0
    emp_ids = np.char.add("EMP", (earners[~inside] % 997).astype(str))
    for m in range(months + 1):
        d = (pay_dom - start_dom) % 30 + 30 * m
        amt = np.round(pop.salary[earners] * np.clip(1 + wage_sd * rng.standard_normal(len(earners)), 0.55, 1.6), 2)
        ev.transfer(
            emp[inside],
            earners[inside],
            d[inside],
            minutes(rng, int(inside.sum()), "office"),
            amt[inside],
            "transfer",
            description="Salaris",
            src_type="business",
            src_name="Werkgever",
        )
        ext = earners[~inside]
        ev.add(
            ext,
            d[~inside],
            minutes(rng, len(ext), "office"),
            "credit",
            amt[~inside],
            "transfer",
            cp_ext=emp_ids,
            cp_type="business",
            cp_name="Werkgever BV",
            cp_country="NL",
            description="Salaris",
        )
    for kind, name, desc in (
        ("student", "DUO", "Studiefinanciering"),
        ("pension", "SVB", "AOW uitkering"),
        ("benefit", "UWV", "WW uitkering"),
    ):
        who = persons[pop.income_kind[persons] == kind]
        extra = pop.salary[who] if kind != "student" else np.full(len(who), 320.0)
        for d in month_days(days, 1 if kind == "student" else 23, start_dom):
            ev.add(
                who,
                np.full(len(who), d),
                minutes(rng, len(who), "office"),
                "credit",
                extra,
                "transfer",
                cp_ext=f"GOV-{name}",
                cp_type="business",
                cp_name=name,
                cp_country="NL",
                description=desc,
            )
    self_emp = persons[pop.income_kind[persons] == "self"]
    k = rng.poisson(3 * months, len(self_emp))
    acc = np.repeat(self_emp, k)
    ev.add(
        acc,
        rng.integers(0, days, len(acc)),
        minutes(rng, len(acc), "office"),
        "credit",
        np.exp(rng.normal(np.log(900), 0.6, len(acc))),
        "transfer",
        cp_ext=np.char.add("CLIENT", rng.integers(0, 5000, len(acc)).astype(str)),
        cp_type="business",
        cp_name="Opdrachtgever BV",
        cp_country="NL",
        description="Factuur",
    )

    # housing: one payer per household pays rent or mortgage on the 1st
    heads = persons[pop.household[persons] == persons]
    rent = np.round(np.exp(rng.normal(np.log(950), 0.3, len(heads))), 0)
    landlord = rng.choice(HOUSING, len(heads))
    for d in month_days(days, 1, start_dom):
        ev.add(
            heads,
            np.full(len(heads), d),
            minutes(rng, len(heads), "office"),
            "debit",
            rent,
            "direct_debit",
            cp_ext=np.char.add("LL-", landlord),
            cp_type="business",
            cp_name=landlord,
            cp_country="NL",
            description="Huur/hypotheek",
        )
    # direct debits: energy, insurance, one telecom contract (some two)
    for names, amount_med, mcc, per in (
        (ENERGY, 140, "4900", heads),
        (INSURERS, 145, "6300", persons),
        (TELCOS, 25, "4814", persons),
    ):
        who = per
        prov = rng.choice(names, len(who))
        amt = np.round(np.exp(rng.normal(np.log(amount_med), 0.25, len(who))), 2)
        dom = rng.integers(2, 28, len(who))
        for m in range(months + 1):
            d = (dom - start_dom) % 30 + 30 * m
            ev.add(
                who,
                d,
                minutes(rng, len(who), "office"),
                "debit",
                amt,
                "direct_debit",
                cp_ext=np.char.add("DD-", prov),
                cp_type="business",
                cp_name=prov,
                cp_country="NL",
                mcc=mcc,
            )

    # card spending with real MCCs and a daytime profile
    rate = np.where(pop.age[persons] < 30, 1.0, 0.8)
    k = rng.poisson(rate * days)
    acc = np.repeat(persons, k)
    w = np.array([m[1] for m in CARD_MIX], dtype=float)
    kind = rng.choice(len(CARD_MIX), len(acc), p=w / w.sum())
    med = np.array([m[2] for m in CARD_MIX], dtype=float)[kind]
    mcc = np.array([m[0] for m in CARD_MIX])[kind]
    names = [m for mix in CARD_MIX for m in mix[3]]
    first = np.cumsum([0] + [len(mix[3]) for mix in CARD_MIX])[:-1]
    merchant = first[kind] + rng.integers(0, np.array([len(mix[3]) for mix in CARD_MIX])[kind])
    city = pop.city[acc].copy()
    away = rng.random(len(acc)) < 0.12
    city[away] = rng.choice(len(CITIES), away.sum(), p=CITY_WEIGHTS / CITY_WEIGHTS.sum())
    ev.add(
        acc,
        rng.integers(0, days, len(acc)),
        minutes(rng, len(acc), "day"),
        "debit",
        np.exp(rng.normal(np.log(med), 0.55)),
        "card",
        cp_ext=Cat(["M-" + m for m in names], merchant),
        cp_type="business",
        cp_name=Cat(names, merchant),
        cp_country="NL",
        mcc=Cat([m[0] for m in CARD_MIX], kind),
        city=Cat(CITIES, city),
    )

    # ATM cash: about twice a month, mostly daytime, in the home city
    k = rng.poisson(2.0 * days / 30, len(persons))
    acc = np.repeat(persons, k)
    night = rng.random(len(acc)) < 0.05
    mins = np.where(night, minutes(rng, len(acc), "night"), minutes(rng, len(acc), "day"))
    ev.add(
        acc,
        rng.integers(0, days, len(acc)),
        mins,
        "debit",
        rng.choice([20, 50, 50, 100, 100, 150, 200], len(acc)).astype(float),
        "cash_withdrawal",
        mcc="6011",
        city=Cat(CITIES, pop.city[acc]),
    )

    # p2p among friends: each person has a circle of friends (mostly one city, any bank) and pays them back and forth;
    # a share goes to anyone (Marktplaats, one-off Tikkies)
    circle_members = persons[np.lexsort((rng.random(len(persons)), pop.city[persons]))]
    csize = rng.integers(fam.friends[0], fam.friends[1] + 1, len(persons))
    cstart = np.r_[0, np.cumsum(csize)[:-1]]
    cstart = cstart[cstart < len(persons)]
    csize = np.minimum(csize[: len(cstart)], len(persons) - cstart)
    circle = np.empty(pop.n, dtype=np.int64)
    circle[circle_members] = np.repeat(np.arange(len(cstart)), csize)
    k = rng.poisson(rng.gamma(2.0, 1.5, len(persons)) * days / 30)
    src = np.repeat(persons, k)
    c = circle[src]
    dst = circle_members[cstart[c] + (rng.random(len(src)) * csize[c]).astype(np.int64)]
    anyone = (rng.random(len(src)) < 0.3) | (dst == src)
    dst = np.where(anyone, rng.choice(persons, len(src)), dst)
    ok = dst != src
    src, dst = src[ok], dst[ok]
    desc = rng.choice(4, len(src), p=[0.3, 0.25, 0.2, 0.25])
    ev.transfer(
        src,
        dst,
        rng.integers(0, days, len(src)),
        minutes(rng, len(src), "evening"),
        np.round(np.exp(rng.normal(np.log(25), 0.85, len(src))), 2),
        Cat(["instant_transfer", "transfer"], (rng.random(len(src)) >= 0.6).astype(int)),
        description=Cat(["Tikkie", "bedankt", "etentje", None], desc),
        device_src=pop.device[src],
    )

    # households: members pay into the household pot (often at another bank), parents give pocket money
    members = persons[(pop.household[persons] != persons)]
    members = members[rng.random(len(members)) < fam.household_transfer_share]
    pot = np.round(rng.uniform(150, 700, len(members)), -1)
    young = members[pop.age[members] < 23]
    allowance = np.round(rng.uniform(25, 150, len(young)), -1)
    pot_dom, young_dom = rng.integers(24, 31, len(members)), rng.integers(1, 6, len(young))
    for m in range(months + 1):
        ev.transfer(
            members,
            pop.household[members],
            (pot_dom - start_dom) % 30 + 30 * m,
            minutes(rng, len(members), "evening"),
            pot,
            "transfer",
            description="huishoudpot",
            device_src=pop.device[members],
        )
        ev.transfer(
            pop.household[young],
            young,
            (young_dom - start_dom) % 30 + 30 * m,
            minutes(rng, len(young), "evening"),
            allowance,
            "transfer",
            description="zakgeld",
        )

    # card payments to large merchants registered abroad (marketplaces, app stores, airlines, betting): thousands of
    # accounts pay the same merchant; a few payments come back as refunds
    fm = fam.foreign_merchants
    k = rng.poisson(fam.foreign_per_month * rng.gamma(1.5, 1 / 1.5, len(persons)) * days / 30)
    acc = np.repeat(persons, k)
    w = np.array([m[4] for m in fm], dtype=float)
    which = rng.choice(len(fm), len(acc), p=w / w.sum())
    amt = np.round(np.exp(rng.normal(np.log(np.array([m[3] for m in fm], dtype=float)[which]), 0.6)), 2)
    fm_names, fm_country, fm_mcc = [m[0] for m in fm], [m[1] for m in fm], [m[2] for m in fm]
    day = rng.integers(0, days, len(acc))
    ev.add(
        acc,
        day,
        minutes(rng, len(acc), "evening"),
        "debit",
        amt,
        "card",
        cp_ext=Cat(["M-" + n for n in fm_names], which),
        cp_type="business",
        cp_name=Cat(fm_names, which),
        cp_country=Cat(fm_country, which),
        mcc=Cat(fm_mcc, which),
    )
    back = rng.random(len(acc)) < 0.04
    ev.add(
        acc[back],
        day[back] + rng.integers(3, 20, int(back.sum())),
        minutes(rng, int(back.sum()), "office"),
        "credit",
        amt[back],
        "card",
        cp_ext=Cat(["M-" + n for n in fm_names], which[back]),
        cp_type="business",
        cp_name=Cat(fm_names, which[back]),
        cp_country=Cat(fm_country, which[back]),
        mcc=Cat(fm_mcc, which[back]),
        description="Refund",
    )

    # broadband and family phone plans: contracts that began before the window, booked on their own monthly date
    # (which may fall a week or more into the window); a family pays several lines, sometimes at several providers
    heads_bb = heads[rng.random(len(heads)) < 0.8]
    bb = rng.choice(BROADBAND, len(heads_bb))
    fam_heads = heads[rng.random(len(heads)) < fam.family_plan_share]
    lines = rng.integers(1, 4, len(fam_heads))
    fh = np.repeat(fam_heads, lines)
    fp = np.where(rng.random(len(fh)) < 0.6, rng.choice(TELCOS[:4], len(fh)), rng.choice(TELCOS, len(fh)))
    for who, prov, med, desc in ((heads_bb, bb, 55, "Internet en TV"), (fh, fp, 18, "Extra simkaart")):
        amt = np.round(np.exp(rng.normal(np.log(med), 0.2, len(who))), 2)
        dom = rng.integers(2, 29, len(who))
        for m in range(months + 1):
            ev.add(
                who,
                (dom - start_dom) % 30 + 30 * m,
                minutes(rng, len(who), "office"),
                "debit",
                amt,
                "direct_debit",
                cp_ext=np.char.add("DD-", prov),
                cp_type="business",
                cp_name=prov,
                cp_country="NL",
                mcc="4814",
                description=desc,
            )
    # quarterly and yearly bills: first (and only) booking anywhere in the window
    for names, med, share in (
        (np.array(["Waterschap", "Gemeentebelastingen"]), 120, 0.7),
        (np.array(["ANWB", "Kinderopvang"]), 90, 0.2),
    ):
        who = heads[rng.random(len(heads)) < share]
        prov = rng.choice(names, len(who))
        ev.add(
            who,
            rng.integers(0, days, len(who)),
            minutes(rng, len(who), "office"),
            "debit",
            np.round(np.exp(rng.normal(np.log(med), 0.4, len(who))), 2),
            "direct_debit",
            cp_ext=np.char.add("DD-", prov),
            cp_type="business",
            cp_name=prov,
            cp_country="NL",
        )

    # buy now, pay later: webshop purchases paid in three monthly instalments to the provider; refunds come back from it
    shoppers = persons[(rng.random(len(persons)) < fam.bnpl_share * np.where(pop.age[persons] < 35, 1.6, 0.7))]
    k = rng.poisson(1.2 * days / 30, len(shoppers))
    acc = np.repeat(shoppers, k)
    prov_i = rng.choice(len(BNPL), len(acc), p=[0.5, 0.25, 0.15, 0.1])
    price = np.round(np.exp(rng.normal(np.log(120), 0.7, len(acc))), 2)
    day = rng.integers(-60, days, len(acc))  # instalments of purchases made before the window too
    names, countries = [b[0] for b in BNPL], [b[1] for b in BNPL]
    for j in range(3):
        ev.add(
            acc,
            day + 30 * j,
            minutes(rng, len(acc), "office"),
            "debit",
            np.round(price / 3, 2),
            "direct_debit",
            cp_ext=Cat(["BNPL-" + n for n in names], prov_i),
            cp_type="business",
            cp_name=Cat(names, prov_i),
            cp_country=Cat(countries, prov_i),
            description=f"termijn {j + 1}/3",
        )
    back = rng.random(len(acc)) < 0.1
    ev.add(
        acc[back],
        day[back] + rng.integers(5, 25, int(back.sum())),
        minutes(rng, int(back.sum()), "office"),
        "credit",
        price[back],
        "transfer",
        cp_ext=Cat(["BNPL-" + n for n in names], prov_i[back]),
        cp_type="business",
        cp_name=Cat(names, prov_i[back]),
        cp_country=Cat(countries, prov_i[back]),
        description="Terugbetaling retour",
    )
    # migrants send money home to their own family: monthly, varying sums, through a money transfer operator
    senders = persons[(pop.nationality[persons] != "NL") & (rng.random(len(persons)) < 0.2)]
    dom = rng.integers(1, 31, len(senders))
    mto = rng.choice(np.array(["Western Union", "MoneyGram", "Ria", "WorldRemit"]), len(senders))
    base = rng.uniform(80, 400, len(senders))
    for m in range(months + 1):
        ev.add(
            senders,
            (dom - start_dom) % 30 + 30 * m + rng.integers(-3, 4, len(senders)),
            minutes(rng, len(senders), "day"),
            "debit",
            np.round(base * rng.uniform(0.6, 1.4, len(senders)), 0),
            "money_remittance",
            cp_ext=np.char.add("FAM-", senders.astype(str)),
            cp_type="person",
            cp_name=mto,
            cp_country=pop.nationality[senders],
            description="family",
        )
    # one ordinary consumer loan (car, kitchen), repaid monthly
    borrowers = persons[(rng.random(len(persons)) < fam.loan_share) & (pop.age[persons] >= 21)]
    lender = rng.choice(np.array(["Santander Consumer", "Freo", "Qander", "ING Persoonlijke Lening"]), len(borrowers))
    principal = np.round(rng.uniform(2000, 15000, len(borrowers)), -2)
    day = rng.integers(0, days, len(borrowers))
    ev.add(
        borrowers,
        day,
        minutes(rng, len(borrowers), "office"),
        "credit",
        principal,
        "loan_disbursement",
        cp_ext=np.char.add("LEND-", lender),
        cp_type="business",
        cp_name=lender,
        cp_country="NL",
        description="Uitbetaling lening",
    )
    for m in range(1, months + 1):
        ev.add(
            borrowers,
            day + 30 * m,
            minutes(rng, len(borrowers), "office"),
            "debit",
            np.round(principal / 48, 2),
            "direct_debit",
            cp_ext=np.char.add("LEND-", lender),
            cp_type="business",
            cp_name=lender,
            cp_country="NL",
            description="Aflossing",
        )

    # savings: monthly to the customer's own savings account (external to the extract)
    savers = persons[rng.random(len(persons)) < 0.4]
    amt = np.round(rng.uniform(50, 500, len(savers)), -1)
    for d in month_days(days, 26, start_dom):
        ev.add(
            savers,
            np.full(len(savers), d),
            minutes(rng, len(savers), "office"),
            "debit",
            amt,
            "transfer",
            cp_ext=np.char.add("SAV-", savers.astype(str)),
            cp_type="person",
            cp_country="NL",
            description="Sparen",
            device=pop.device[savers].astype(str),
        )

    # businesses: card takings, B2B invoices, suppliers, payroll tax, cash for cash-intensive sectors
    card = np.array([SECTORS[s][2] for s in range(len(SECTORS))])
    cashy = np.array([SECTORS[s][3] for s in range(len(SECTORS))])
    size = np.exp(rng.normal(0, 0.7, pop.n))
    b_card = businesses[card[pop.sector[businesses]]]
    acc = np.repeat(b_card, days)
    day = np.tile(np.arange(days), len(b_card))
    ev.add(
        acc,
        day,
        minutes(rng, len(acc), "office"),
        "credit",
        600 * size[acc] * rng.uniform(0.5, 1.5, len(acc)),
        "transfer",
        cp_ext="PSP-ACQ",
        cp_type="business",
        cp_name=rng.choice(["Adyen", "CCV", "Worldline"]),
        cp_country="NL",
        description="Afrekening pinbetalingen",
    )
    for per_month, direction, median, prefix, name in (
        (6, "credit", 2500, "B2B", "Klant BV"),  # invoices paid to it
        (8, "debit", 1500, "SUP", "Leverancier BV"),
    ):  # its suppliers
        k = rng.poisson(per_month * months, len(businesses))
        acc = np.repeat(businesses, k)
        ev.add(
            acc,
            rng.integers(0, days, len(acc)),
            minutes(rng, len(acc), "office"),
            direction,
            np.exp(rng.normal(np.log(median), 0.9, len(acc))) * size[acc],
            "transfer",
            cp_ext=np.char.add(prefix, rng.integers(0, 3000, len(acc)).astype(str)),
            cp_type="business",
            cp_name=name,
            cp_country="NL",
            description="Factuur",
        )
    for d in month_days(days, 28, start_dom):
        ev.add(
            businesses,
            np.full(len(businesses), d),
            minutes(rng, len(businesses), "office"),
            "debit",
            np.round(900 * size[businesses], 2),
            "transfer",
            cp_ext="GOV-BELASTINGDIENST",
            cp_type="business",
            cp_name="Belastingdienst",
            cp_country="NL",
            description="Loonheffing/BTW",
        )
    b_cash = businesses[cashy[pop.sector[businesses]]]
    k = rng.poisson(days / 7, len(b_cash))
    acc = np.repeat(b_cash, k)
    ev.add(
        acc,
        rng.integers(0, days, len(acc)),
        minutes(rng, len(acc), "day"),
        "credit",
        np.round(np.exp(rng.normal(np.log(900), 0.5, len(acc))) * size[acc], -1),
        "cash_deposit",
        city=CITIES[pop.city[acc]],
    )
