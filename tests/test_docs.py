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


def test_every_cited_indicator_is_explained_and_every_explained_one_cited():
    """An analyst reads a rule's indicator ids in docs/rules.md: each id a rule, pattern or shipped FIU theme names has
    its meaning and sources there; the table holds no id but those and the README's own theme example (ML-07)."""
    from casework.fiu.themes import load_themes
    from detectors.patterns import PATTERNS
    from detectors.rules import RULES
    from schemas.indicators import INDICATORS, SOURCES

    themes, errors = load_themes()
    assert not errors
    cited = {i for r in [*RULES, *PATTERNS] for i in r.indicators} | {i for t in themes for i in t.indicators}
    assert cited - set(INDICATORS) == set(), "cited but not explained"
    assert set(INDICATORS) - cited == {"ML-07"}, "explained but cited by nothing"
    assert "indicators: [ML-07]" in (DOCS.parent / "README.md").read_text()
    assert {s for _, sources in INDICATORS.values() for s in sources} <= set(SOURCES)
