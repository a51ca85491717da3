"""A retail population of persons and businesses, and their ordinary banking."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.events import Cat, Events, minutes

CITIES = np.array(["Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere",
                   "Breda", "Nijmegen", "Apeldoorn", "Haarlem", "Arnhem", "Enschede", "Amersfoort", "Zaanstad",
                   "'s-Hertogenbosch", "Zwolle", "Leiden", "Maastricht", "Westland", "Venlo"])
CITY_WEIGHTS = np.array([14, 10, 8, 6, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2], dtype=float)
POSTCODE_AREA = np.array([10, 30, 25, 35, 56, 97, 50, 13, 48, 65, 73, 20, 68, 75, 38, 15, 52, 80, 23, 62, 26, 59])

NATIONALITIES = np.array(["NL", "PL", "RO", "BG", "DE", "TR", "MA", "SR", "GB", "NG", "CN", "VN", "UA", "BE", "IN", "SY"])
NAT_WEIGHTS = np.array([80, 3, 2, 1.5, 2, 2, 2, 1, .5, .5, .7, .3, 1.2, 1, 1, 1], dtype=float)

# sector code, weight, card-acquiring (takings by card), cash-intensive
SECTORS = [("47.11", 12, True, False), ("56.10", 10, True, True), ("56.30", 6, True, True), ("41.20", 8, False, False),
           ("62.01", 10, False, False), ("70.22", 10, False, False), ("78.20", 5, False, False), ("45.20", 3, True, True),
           ("96.02", 5, True, True), ("01.13", 4, False, False), ("81.21", 5, False, False), ("49.41", 5, False, False),
           ("55.10", 3, True, False), ("96.01", 2, True, True), ("86.23", 4, True, False), ("47.71", 8, True, False)]

# card spending: mcc, weight, median amount, merchant names
CARD_MIX = [("5411", 34, 28, ["Albert Heijn", "Jumbo", "Lidl", "Aldi", "Plus"]),
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
            ("5462", 4, 8, ["Bakkerij Bart", "Bakker Bart"])]

TELCOS = np.array(["KPN", "Vodafone", "Odido", "Ben", "Simyo", "Lebara", "Lycamobile", "Youfone"])
ENERGY = np.array(["Eneco", "Vattenfall", "Essent", "Greenchoice"])
INSURERS = np.array(["Zilveren Kruis", "CZ", "VGZ", "Menzis"])
HOUSING = np.array(["Woonstichting De Key", "Ymere", "Vestia", "Portaal", "Hypotheek ING", "Hypotheek Rabobank"])


@dataclass
class Population:
    n: int
    is_business: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    nationality: np.ndarray
    city: np.ndarray             # index into CITIES
    household: np.ndarray        # address group
    account_age_days: np.ndarray
    sector: np.ndarray           # index into SECTORS, -1 for persons
    employer: np.ndarray         # population index of employer business, -1 external/none
    income_kind: np.ndarray      # salary | student | pension | benefit | self | none
    salary: np.ndarray
    device: np.ndarray           # device index
    phone: np.ndarray            # phone index
    bank: np.ndarray


def make_population(rng: np.random.Generator, n: int, banks: int) -> Population:
    is_business = rng.random(n) < 0.08
    persons = np.flatnonzero(~is_business)
    age = np.clip(rng.gamma(6.0, 7.5, n) + 16, 18, 95).astype(int)
    gender = rng.choice(np.array(["f", "m", "x"]), n, p=[0.495, 0.495, 0.01])
    nationality = rng.choice(NATIONALITIES, n, p=NAT_WEIGHTS / NAT_WEIGHTS.sum())
    city = rng.choice(len(CITIES), n, p=CITY_WEIGHTS / CITY_WEIGHTS.sum())
    # households of 1-4 persons share an address (and a city)
    household = np.arange(n)
    size = rng.choice([1, 2, 3, 4], len(persons), p=[0.38, 0.33, 0.15, 0.14])
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
    return Population(n, is_business, age, gender, nationality, city, household, account_age_days, sector,
                      employer, income_kind, salary, device, phone, bank)


def month_days(days: int, day_of_month: int, start_dom: int) -> np.ndarray:
    """Window day indices that fall on a given day of the month (start_dom: day of month of day 0)."""
    d = np.arange(days)
    dom = (start_dom - 1 + d) % 30 + 1
    return d[dom == day_of_month]


def background(ev: Events, pop: Population, start_dom: int) -> None:
    """Salaries, rent, direct debits, card spending, cash, p2p among friends, savings, business flows."""
    rng, days = ev.rng, ev.days
    persons = np.flatnonzero(~pop.is_business)
    businesses = np.flatnonzero(pop.is_business)
    months = max(1, days // 30)

    # income: salary on the 25th (employer inside the population pays it), pensions, student grants, benefits
    pay_days = month_days(days, 25, start_dom)
    for kind, name, desc in (("salary", None, "Salaris"), ("student", "DUO", "Studiefinanciering"),
                             ("pension", "SVB", "AOW uitkering"), ("benefit", "UWV", "WW uitkering")):
        who = persons[pop.income_kind[persons] == kind]
        if kind in ("salary", "student"):
            paid = who[pop.employer[who] >= 0]
            for d in pay_days:
                ev.transfer(pop.employer[paid], paid, np.full(len(paid), d), minutes(rng, len(paid), "office"),
                            pop.salary[paid], "transfer", description="Salaris", src_type="business",
                            src_name="Werkgever")
            ext = who[pop.employer[who] < 0]
            emp_ids = np.char.add("EMP", (ext % 997).astype(str))
            for d in pay_days:
                ev.add(ext, np.full(len(ext), d), minutes(rng, len(ext), "office"), "credit", pop.salary[ext], "transfer",
                       cp_ext=emp_ids, cp_type="business", cp_name="Werkgever BV", cp_country="NL", description="Salaris")
        if kind != "salary":
            extra = pop.salary[who] if kind != "student" else np.full(len(who), 320.0)
            for d in month_days(days, 1 if kind == "student" else 23, start_dom):
                ev.add(who, np.full(len(who), d), minutes(rng, len(who), "office"), "credit", extra, "transfer",
                       cp_ext=f"GOV-{name}", cp_type="business", cp_name=name, cp_country="NL", description=desc)
    self_emp = persons[pop.income_kind[persons] == "self"]
    k = rng.poisson(3 * months, len(self_emp))
    acc = np.repeat(self_emp, k)
    ev.add(acc, rng.integers(0, days, len(acc)), minutes(rng, len(acc), "office"), "credit",
           np.exp(rng.normal(np.log(900), 0.6, len(acc))), "transfer", cp_ext=np.char.add("CLIENT", rng.integers(0, 5000, len(acc)).astype(str)),
           cp_type="business", cp_name="Opdrachtgever BV", cp_country="NL", description="Factuur")

    # housing: one payer per household pays rent or mortgage on the 1st
    heads = persons[pop.household[persons] == persons]
    rent = np.round(np.exp(rng.normal(np.log(950), 0.3, len(heads))), 0)
    landlord = rng.choice(HOUSING, len(heads))
    for d in month_days(days, 1, start_dom):
        ev.add(heads, np.full(len(heads), d), minutes(rng, len(heads), "office"), "debit", rent, "direct_debit",
               cp_ext=np.char.add("LL-", landlord), cp_type="business", cp_name=landlord, cp_country="NL", description="Huur/hypotheek")
    # direct debits: energy, insurance, one telecom contract (some two)
    for names, amount_med, mcc, per in ((ENERGY, 140, "4900", heads), (INSURERS, 145, "6300", persons),
                                        (TELCOS, 25, "4814", persons)):
        who = per
        prov = rng.choice(names, len(who))
        amt = np.round(np.exp(rng.normal(np.log(amount_med), 0.25, len(who))), 2)
        dom = rng.integers(2, 28, len(who))
        for m in range(months + 1):
            d = (dom - start_dom) % 30 + 30 * m
            ev.add(who, d, minutes(rng, len(who), "office"), "debit", amt, "direct_debit", cp_ext=np.char.add("DD-", prov),
                   cp_type="business", cp_name=prov, cp_country="NL", mcc=mcc)

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
    ev.add(acc, rng.integers(0, days, len(acc)), minutes(rng, len(acc), "day"), "debit",
           np.exp(rng.normal(np.log(med), 0.55)), "card", cp_ext=Cat(["M-" + m for m in names], merchant), cp_type="business",
           cp_name=Cat(names, merchant), cp_country="NL", mcc=Cat([m[0] for m in CARD_MIX], kind), city=Cat(CITIES, city))

    # ATM cash: about twice a month, mostly daytime, in the home city
    k = rng.poisson(2.0 * days / 30, len(persons))
    acc = np.repeat(persons, k)
    night = rng.random(len(acc)) < 0.05
    mins = np.where(night, minutes(rng, len(acc), "night"), minutes(rng, len(acc), "day"))
    ev.add(acc, rng.integers(0, days, len(acc)), mins, "debit", rng.choice([20, 50, 50, 100, 100, 150, 200], len(acc)).astype(float),
           "cash_withdrawal", mcc="6011", city=Cat(CITIES, pop.city[acc]))

    # p2p among friends: mostly same city, small amounts, some Tikkie requests
    k = rng.poisson(3.0 * days / 30, len(persons))
    src = np.repeat(persons, k)
    same = rng.random(len(src)) < 0.7
    dst = rng.choice(persons, len(src))
    dst = np.where(same & (pop.household[dst] != pop.household[src]), dst, rng.choice(persons, len(src)))
    desc = rng.choice(3, len(src), p=[0.3, 0.35, 0.35])
    ev.transfer(src, dst, rng.integers(0, days, len(src)), minutes(rng, len(src), "evening"),
                np.round(np.exp(rng.normal(np.log(25), 0.8, len(src))), 2),
                Cat(["instant_transfer", "transfer"], (rng.random(len(src)) >= 0.6).astype(int)),
                description=Cat(["Tikkie", "bedankt", None], desc), device_src=pop.device[src])

    # savings: monthly to the customer's own savings account (external to the extract)
    savers = persons[rng.random(len(persons)) < 0.4]
    amt = np.round(rng.uniform(50, 500, len(savers)), -1)
    for d in month_days(days, 26, start_dom):
        ev.add(savers, np.full(len(savers), d), minutes(rng, len(savers), "office"), "debit", amt, "transfer",
               cp_ext=np.char.add("SAV-", savers.astype(str)), cp_type="person", cp_country="NL", description="Sparen",
               device=pop.device[savers].astype(str))

    # businesses: card takings, B2B invoices, suppliers, payroll tax, cash for cash-intensive sectors
    card = np.array([SECTORS[s][2] for s in range(len(SECTORS))])
    cashy = np.array([SECTORS[s][3] for s in range(len(SECTORS))])
    size = np.exp(rng.normal(0, 0.7, pop.n))
    b_card = businesses[card[pop.sector[businesses]]]
    acc = np.repeat(b_card, days)
    day = np.tile(np.arange(days), len(b_card))
    ev.add(acc, day, minutes(rng, len(acc), "office"), "credit", 600 * size[acc] * rng.uniform(0.5, 1.5, len(acc)), "transfer",
           cp_ext="PSP-ACQ", cp_type="business", cp_name=rng.choice(["Adyen", "CCV", "Worldline"]), cp_country="NL",
           description="Afrekening pinbetalingen")
    for per_month, direction, median, prefix, name in ((6, "credit", 2500, "B2B", "Klant BV"),          # invoices paid to it
                                                       (8, "debit", 1500, "SUP", "Leverancier BV")):  # its suppliers
        k = rng.poisson(per_month * months, len(businesses))
        acc = np.repeat(businesses, k)
        ev.add(acc, rng.integers(0, days, len(acc)), minutes(rng, len(acc), "office"), direction,
               np.exp(rng.normal(np.log(median), 0.9, len(acc))) * size[acc], "transfer",
               cp_ext=np.char.add(prefix, rng.integers(0, 3000, len(acc)).astype(str)), cp_type="business", cp_name=name,
               cp_country="NL", description="Factuur")
    for d in month_days(days, 28, start_dom):
        ev.add(businesses, np.full(len(businesses), d), minutes(rng, len(businesses), "office"), "debit",
               np.round(900 * size[businesses], 2), "transfer", cp_ext="GOV-BELASTINGDIENST", cp_type="business",
               cp_name="Belastingdienst", cp_country="NL", description="Loonheffing/BTW")
    b_cash = businesses[cashy[pop.sector[businesses]]]
    k = rng.poisson(days / 7, len(b_cash))
    acc = np.repeat(b_cash, k)
    ev.add(acc, rng.integers(0, days, len(acc)), minutes(rng, len(acc), "day"), "credit",
           np.round(np.exp(rng.normal(np.log(900), 0.5, len(acc))) * size[acc], -1), "cash_deposit",
           city=CITIES[pop.city[acc]])
