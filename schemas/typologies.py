"""The typologies thb-signals looks for, listed once: the rules, fusion, cases, the goAML export and the
synthetic generator all read this registry, so a new typology is one entry here plus its rules.

`prefix` is the indicator family (SE-01, LE-02, ...: schemas/indicators.py) and the prefix of the
generator's scenario ids; `words` is how a report to FIU-Nederland names it (casework/goaml.py).
`planted`: the generator plants scenarios of it (laundering is a mechanic shared by all typologies, not planted).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Typology:
    id: str
    name: str
    prefix: str
    words: str
    planted: bool = True


TYPOLOGIES: dict[str, Typology] = {
    t.id: t
    for t in (
        Typology("sexual_exploitation", "Sexual exploitation", "SE", "sexual exploitation (human trafficking)"),
        Typology("labour_exploitation", "Labour exploitation", "LE", "labour exploitation (human trafficking)"),
        Typology("criminal_exploitation", "Criminal exploitation", "CE", "criminal exploitation (forced crime, money mules)"),
        Typology("creditboys", "Creditboys", "CD", "coerced credit and phone contracts ('creditboys')"),
        Typology("debt_bondage", "Debt bondage", "XB", "debt bondage along a migration route"),
        Typology("laundering", "Laundering", "ML", "laundering of trafficking proceeds", planted=False),
    )
}

# Fusion's label for an account only the anomaly model flags: not a typology, but a report may still name it.
ANOMALY = "anomaly"
ANOMALY_WORDS = "behaviour unusual for the customer's segment"
# A network rule of this pseudo-typology takes the typology of the accounts it links (a column of its SQL).
INHERIT = "inherit"
# The typology of an account that fired only laundering rules (fusion) and of a rule that fits no single typology.
LAUNDERING = "laundering"


def planted() -> list[Typology]:
    """The typologies the synthetic generator plants, in registry order."""
    return [t for t in TYPOLOGIES.values() if t.planted]


def words(typology: str | None) -> str | None:
    """How a report names a typology; an unknown label is returned as it is."""
    if typology == ANOMALY:
        return ANOMALY_WORDS
    t = TYPOLOGIES.get(typology) if typology else None
    return t.words if t else typology
