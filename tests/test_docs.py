"""The documents users read in a clone are generated from the code's data; they must not drift from it."""

from pathlib import Path

from detectors.catalogue import markdown as rules_markdown
from schemas.contract import markdown as contract_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_rules_document_is_current():
    assert (DOCS / "rules.md").read_text() == rules_markdown(), "regenerate: python -m detectors.catalogue > docs/rules.md"


def test_contract_document_is_current():
    assert (DOCS / "contract.md").read_text() == contract_markdown() + "\n", "regenerate: thb-signals contract > docs/contract.md"


def test_every_rule_and_pattern_is_in_the_rules_document():
    from detectors.patterns import PATTERNS
    from detectors.rules import RULES

    text = (DOCS / "rules.md").read_text()
    assert all(f"`{r.id}`" in text for r in [*RULES, *PATTERNS])
