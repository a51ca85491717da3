"""A config's checks that need the detectors (rule ids and parameters, pattern settings), made before anything runs.

schemas/settings.py checks types and ranges; what names a rule is checked here, against the rules themselves. The
command line and the Prefect flows both call `checked_settings` first, so a typo is refused naming the file before
a batch loads its submissions or records a run.
"""

from __future__ import annotations

from schemas.settings import Settings, SettingsError, load_settings

MODES = ("fused", "rules", "anomaly")  # fused, or one part alone (an ablation)


def check(settings: Settings, source: str) -> None:
    """Raise SettingsError naming `source` when a rule, a rule's parameter or a pattern setting is not one we have."""
    from detectors.patterns import PATTERNS, PatternDetector
    from detectors.rules import RULES, rule_set
    from detectors.window import CATEGORIES

    overrides = {**settings.rules.overrides(), "disabled": list(settings.rules.disabled)}
    try:
        rule_set(overrides)
        PatternDetector({**overrides, "patterns": dict(settings.patterns)})
    except ValueError as e:
        raise SettingsError(f"{source}: {e}") from None
    unknown = sorted(set(settings.window.categories) - set(CATEGORIES))
    if unknown:  # the rules read the categories they know; another name is a typo no rule would ever read
        raise SettingsError(f"{source}: window.categories: no category {', '.join(unknown)}; there are {', '.join(CATEGORIES)}")
    unknown = sorted(set(settings.fusion.rule_rate_ceilings or {}) - {r.id for r in [*RULES, *PATTERNS]})
    if unknown:
        raise SettingsError(f"{source}: fusion.rule_rate_ceilings: no rule {', '.join(unknown)} (see `thb-signals rules`)")


def checked_settings(config: str | None, **flags) -> Settings:
    """The settings of `config` (defaults without one) with flags over them (`window.days=30`), every check made."""
    settings = load_settings(config).with_overrides(**flags)
    check(settings, str(config or "the default settings"))
    return settings


def check_run(mode: str = "fused", shards: int = 1) -> None:
    """A flow's own parameters: what `score --mode` and `--shards` accept on the command line."""
    if mode not in MODES:
        raise SettingsError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise SettingsError(f"shards: {shards!r}: expected a whole number from 1 to 4096")
