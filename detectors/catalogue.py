"""The rule and pattern catalogue as a document for analysts and banks (docs/rules.md), generated from the rules as data.

`python -m detectors.catalogue > docs/rules.md` rewrites it; tests/test_docs.py fails when it is out of date.
"""

from __future__ import annotations

from detectors.patterns import PATTERNS
from detectors.rules import RULES
from schemas.indicators import INDICATORS, SOURCES
from schemas.typologies import TYPOLOGIES


def _params(params: dict) -> str:
    return ", ".join(f"`{k}` {v}" for k, v in params.items() if not k.endswith("_rules")) or "-"


def markdown() -> str:
    """Every rule and laundering pattern: id, what it means for an investigator, indicators, severity and settings."""
    lines = [
        "# Rules and patterns (generated from detectors/rules/ and detectors/patterns.py)",
        "",
        "Each rule is one indicator, or a constellation of them, written as DuckDB SQL. Indicator ids (SE-, LE-, CE-, CD-,",
        "XB-, ML-) name published red flags of human trafficking; the table at the end says what each one is and where",
        "it is published (FATF, FinCEN, FINTRAC, AUSTRAC, Europol, the Dutch partners). Severity 1-3 is the indicator's strength. Settings are",
        "overridden per rule in the config's `rules:` section (`rules: {SE07_CLIENT_PAYMENTS: {min_senders: 10}}`).",
        "A rule marked *footprint* sees a lawful activity's ordinary footprint: all such rules of one activity count",
        "as one indicator in fusion. *Network* rules read other accounts' hits or the link graph.",
        "",
    ]
    by_typology: dict[str, list] = {}
    for r in RULES:
        by_typology.setdefault(r.typology, []).append(r)
    names = {t.id: t.name for t in TYPOLOGIES.values()} | {"inherit": "Network rules (the typology of the accounts they link)"}
    for typology, rules in by_typology.items():
        lines += [f"## {names.get(typology, typology.replace('_', ' '))}", ""]
        lines += ["| rule | what it means | indicators | severity | role | settings |", "| --- | --- | --- | --- | --- | --- |"]
        for r in rules:
            marks = [
                m for m, on in (("footprint", r.footprint), ("network", r.stage == 2), ("shared attribute", r.attribute)) if on
            ]
            what = r.name + (f" ({', '.join(marks)})" if marks else "") + ": " + r.description
            lines.append(
                f"| `{r.id}` | {what} | {', '.join(r.indicators)} | {r.severity} | {r.role or '-'} | {_params(r.params)} |"
            )
        lines.append("")
    lines += [
        "## Laundering patterns",
        "",
        "| pattern | what it means | indicators | severity | settings |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in PATTERNS:
        lines.append(f"| `{p.id}` | {p.name}: {p.description} | {', '.join(p.indicators)} | {p.severity} | {_params(p.params)} |")
    lines += ["", "## Indicators", "", "| indicator | what it is | published in |", "| --- | --- | --- |"]
    for ind, (what, sources) in INDICATORS.items():
        lines.append(f"| {ind} | {what} | {', '.join(sources)} |")
    lines += ["", "Sources:", ""] + [f"- **{key}**: {title}" for key, title in SOURCES.items()] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
