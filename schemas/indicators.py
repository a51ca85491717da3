"""The published red flags the rules, patterns and FIU themes cite, as data: id -> what it is and where it is published.

Analysts and banks read a rule's indicator ids in docs/rules.md (detectors/catalogue.py renders this table there), so
each id a rule, pattern or shipped theme names must be here (tests/test_docs.py). The meanings are short summaries
for an investigator; the sources are the public documents each flag was taken from (SOURCES).
"""

from __future__ import annotations

SOURCES: dict[str, str] = {
    "FinCEN 2020": "FinCEN Advisory FIN-2020-A008, Supplemental Advisory on Identifying and Reporting Human Trafficking "
    "and Related Activity (2020)",
    "FinCEN 2014": "FinCEN Advisory FIN-2014-A008, Guidance on Recognizing Activity that May be Associated with Human "
    "Smuggling and Human Trafficking (2014)",
    "FinCEN CVC": "FinCEN Financial Trend Analysis on online child sexual exploitation and human trafficking involving "
    "convertible virtual currency",
    "FINTRAC": "FINTRAC Operational Alert FINTRAC-2021-OA001, Updated Indicators: Laundering of proceeds from human "
    "trafficking for sexual exploitation (2021)",
    "FATF-APG": "FATF-APG, Financial Flows from Human Trafficking (2018)",
    "AUSTRAC": "AUSTRAC / Fintel Alliance, Financial crime guide: Detecting and stopping forced sexual servitude in "
    "Australia (2022)",
    "Europol": "Europol, The THB financial business model (2015)",
    "NL PPP": "the Dutch public-private partnership of a bank, the labour inspectorate and a university on labour "
    "exploitation (2019), later a Financial Expertise Centre project",
    "NL inspectorate": "the Dutch labour inspectorate and RIEC on labour-migrant cases (2020) and on housing deductions",
    "FIU-NL": "FIU-Nederland annual reviews and the Dutch action plan against human trafficking",
    "CKM": "Centrum tegen Kinderhandel en Mensenhandel studies of loverboys and criminal exploitation",
    "creditboys": "Dutch reporting on creditboys and the Meldpunt Creditboys",
    "Polaris": "Polaris financial-intelligence work on bank records of trafficking",
    "NL signals": "the Dutch government's victim signals and UNODC's indicators of labour exploitation",
    "routes": "European and Dutch case reporting on trafficking routes and debt bondage",
}

# id -> (what it is, sources); grouped by family as in the ids: SE sexual exploitation, LE labour exploitation,
# CE criminal exploitation, CD creditboys and coerced debt, XB cross-border, ML laundering mechanics.
INDICATORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SE-01": ("payments for escort or adult advertising: many small fees and premium placements", ("FINTRAC",)),
    "SE-02": ("short hotel or short-stay bookings in several cities", ("FinCEN 2020", "FINTRAC", "AUSTRAC")),
    "SE-04": ("cash activity at night", ("FINTRAC",)),
    "SE-05": ("small cash deposits spread over many ATMs, branches and cities", ("FINTRAC", "AUSTRAC")),
    "SE-06": ("cash deposits or ATM use where hotel bookings are", ("FINTRAC",)),
    "SE-07": ("many small person-to-person credits from unrelated people (client payments)", ("FINTRAC", "AUSTRAC")),
    "SE-08": ("a collector or nominee account that relays money on", ("FINTRAC",)),
    "SE-09": ("a victim's account money only passes through, left empty", ("FinCEN 2020", "FINTRAC")),
    "SE-10": ("spending on running costs that does not fit the customer", ("FinCEN 2020", "FINTRAC", "AUSTRAC")),
    "SE-11": ("prepaid phone top-ups and payments to many telecom providers", ("FINTRAC", "AUSTRAC")),
    "SE-14": ("crypto purchases fed by person-to-person inflows", ("FinCEN 2020", "FinCEN CVC", "FINTRAC")),
    "SE-18": ("private-residence model: several rents and properties", ("FINTRAC",)),
    "SE-19": ("a controller's lavish lifestyle that low income cannot explain", ("FINTRAC", "AUSTRAC")),
    "SE-21": ("money between women, and a coordinator paying women out", ("FINTRAC", "AUSTRAC")),
    "SE-23": ("several phones or devices using one account", ("FinCEN 2020", "FINTRAC")),
    "SE-24": ("victim and perpetrator profiles: weigh a score, never an alert on their own", ("FINTRAC", "CKM")),
    "LE-01": ("wages credited, then (almost) all withdrawn in cash the same or next day", ("FinCEN 2020", "FATF-APG", "NL PPP")),
    "LE-02": ("wages credited, then soon sent on to the employer, the agency or someone linked", ("FinCEN 2020", "FATF-APG")),
    "LE-03": ("several employees' wages paid into one account", ("FinCEN 2020", "FATF-APG")),
    "LE-04": ("many foreign nationals of one sex registered at one address", ("NL PPP", "FINTRAC")),
    "LE-05": (
        "wages below the minimum wage or large housing deductions; the employer is also the landlord",
        ("NL inspectorate",),
    ),
    "LE-06": (
        "workers' bank cards handed over: cash taken back at the same ATMs across workers' accounts",
        ("NL inspectorate", "FinCEN 2020"),
    ),
    "LE-08": ("a business paying for individuals' upkeep", ("FinCEN 2020", "FinCEN 2014")),
    "LE-10": ("recurring debt repayments from a worker to the employer or recruiter", ("FinCEN 2020", "NL signals")),
    "LE-11": ("a front company in an exposed sector with cash anomalies", ("FinCEN 2020", "FINTRAC", "NL PPP")),
    "LE-12": ("wage-sized transfers abroad sent for workers; many senders to one beneficiary", ("FinCEN 2014",)),
    "CE-01": ("a young money mule's account: new, credits from strangers, quick cash-out", ("FinCEN 2020", "FINTRAC", "CKM")),
    "CE-02": ("an account or card used by someone else", ("FinCEN 2020", "CKM")),
    "CE-04": ("contracts taken out in a young person's name for someone else (katvanger)", ("CKM",)),
    "CD-01": ("a burst of new telecom or handset-finance contracts", ("FINTRAC", "creditboys")),
    "CD-02": ("new credit, then at once paid on to a third party", ("FinCEN 2020", "Polaris")),
    "XB-01": (
        "transfers to source countries from accounts with an exploitation profile; many senders to one beneficiary",
        ("FinCEN 2020", "FINTRAC", "FinCEN 2014", "Europol"),
    ),
    "XB-02": ("a debt-bondage repayment pattern", ("FinCEN 2020", "routes")),
    "XB-05": ("links to foreign escort sites, classifieds or job adverts", ("FinCEN 2020", "FINTRAC")),
    "XB-06": ("transactions kept under reporting and ID thresholds; bulk cash", ("FinCEN 2020", "FIU-NL")),
    "ML-01": ("funnel account: deposits in one place, withdrawals elsewhere soon after", ("FinCEN 2020", "FINTRAC")),
    "ML-03": ("income only from cash deposits", ("FinCEN 2020",)),
    "ML-05": ("money passed through a business account, then drained by transfers and cash", ("FINTRAC",)),
    "ML-06": ("frequent transfers between businesses of one owner", ("FINTRAC",)),
    "ML-07": ("an investment or casino account used to pass money through", ("FINTRAC",)),
    "ML-08": ("third-party payment processors hiding who pays or is paid", ("FinCEN 2020",)),
}
