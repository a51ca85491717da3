"""Detection rules as data: each is a published indicator (schemas/indicators.py, docs/rules.md) written as DuckDB SQL.

One module per typology in schemas/typologies.py (sexual_exploitation, labour_exploitation,
criminal_exploitation, creditboys, debt_bondage), laundering for the mechanics they share and network
for the rules over the link graph; base holds the Rule record, its rendering and the shared fragments
and tables. RULES is the catalogue in run order (network rules last).
"""

from __future__ import annotations

from detectors.rules import (
    base,
    creditboys,
    criminal_exploitation,
    debt_bondage,
    labour_exploitation,
    laundering,
    network,
    sexual_exploitation,
)
from detectors.rules.base import SETTINGS, SHARED_TABLES, Rule

MODULES = (sexual_exploitation, labour_exploitation, criminal_exploitation, creditboys, debt_bondage, laundering, network)
RULES: list[Rule] = [r for m in MODULES for r in m.RULES]

_dupes = sorted({r.id for r in RULES if sum(q.id == r.id for q in RULES) > 1})
if _dupes:
    raise ValueError(f"rule ids defined twice: {', '.join(_dupes)}")


def rule_set(overrides: dict | None = None) -> list[Rule]:
    """The rules with parameters overridden from a config: {rule_id: {param: value}, 'disabled': [ids]}."""
    return base.rule_set(RULES, overrides)


def rules_with_role(*roles: str) -> tuple[str, ...]:
    """Ids of the rules that imply one of these roles for the account they fire on (cases read them)."""
    return tuple(r.id for r in RULES if r.role in roles)


__all__ = ["RULES", "SETTINGS", "SHARED_TABLES", "Rule", "rule_set", "rules_with_role"]
