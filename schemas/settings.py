"""Typed settings: every tunable value of a run, with its default defined once, here.

A config file (YAML) holds any subset of the sections below; the loader rejects unknown keys and wrong
types or ranges with the key's path ("fusion.min_score: ..."), so a typo never passes silently. Command-line
flags override the file (`Settings.with_overrides`), and each run records the values it used
(`Settings.as_dict`). Rule parameters are checked against the rule catalogue by detectors.rules.rule_set,
which owns them; here they are only required to be numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RuleParams = dict[str, float | int]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Category(_Section):
    mccs: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # lower-case name keywords


class WindowSettings(_Section):
    days: int = Field(90, ge=7, le=731, description="the scoring window: the last N days in the store")
    categories: dict[str, Category] = Field(default_factory=dict, description="extra merchant/counterparty dictionaries")


class RuleSettings(_Section):
    """`disabled` rule ids, and per rule id its parameter overrides (and `severity`, 1..3)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    disabled: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _numbers_only(cls, data: Any) -> Any:
        for rule_id, params in (data or {}).items() if isinstance(data, dict) else ():
            if rule_id == "disabled":
                continue
            if not isinstance(params, dict):
                raise ValueError(f"{rule_id}: expected a mapping of parameter: number")
            for name, v in params.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{rule_id}.{name}: expected a number, got {v!r}")
        return data

    def overrides(self) -> dict[str, RuleParams]:
        return dict(self.model_extra or {})


class NetworkSettings(_Section):
    max_group: int = Field(30, ge=2, le=10_000, description="shared keys with more accounts are offices, not rings")


class FusionSettings(_Section):
    single_rule_factor: float = Field(0.5, ge=0, le=1)
    anomaly_weight: float = Field(0.5, ge=0, le=1)
    anomaly_single_weight: float = Field(0.1, ge=0, le=1)
    anomaly_only_weight: float = Field(0.2, ge=0, le=1)
    anomaly_floor: float = Field(0.95, ge=0, lt=1)
    min_score: float = Field(0.25, ge=0, le=1, description="alert threshold, a floor under the budget")
    rule_rate_ceiling: float = Field(0.005, gt=0, le=1, description="a rule firing on more of a bank's accounts is flooding")
    rule_rate_ceilings: dict[str, float] | None = Field(None, description="per rule id: its own ceiling")
    rule_rate_min_accounts: int = Field(
        10, ge=0, description="a rule is never flooding while it fires on this many accounts or fewer"
    )
    corroboration_weight: float = Field(0.4, ge=0, le=1, description="how much of the remaining gap full corroboration closes")
    corroboration_full: int = Field(4, ge=1, description="linked accounts, and indicators beyond the first, for full weight")
    corroboration_min_score: float = Field(0.05, ge=0, le=1, description="an account counts as linked evidence from this score")
    corroboration_min_linked: int = Field(2, ge=1, description="corroboration needs this many other linked evidence accounts")
    corroboration_max_linked: int = Field(50, ge=1, description="linked to more evidence accounts than this: a hub")


class CaseSettings(_Section):
    min_eur: float = Field(500.0, ge=0)
    min_transfers: int = Field(3, ge=1)
    max_alerted_per_key: int = Field(50, ge=2)


class BudgetSettings(_Section):
    share: float | None = Field(
        0.01, gt=0, le=1, description="most alerts per bank per run, as a share of scored accounts (null: off)"
    )
    max_alerts: int | None = Field(None, ge=1, description="most alerts per bank per run (null: no absolute cap)")
    min_alerts: int = Field(10, ge=0, description="room for at least this many in a small extract")


class ReviewSettings(_Section):
    dismissed_rise: float = Field(
        0.15, ge=-1, le=1, description="a dismissed account is raised again only if its score rises this much"
    )
    page_size: int = Field(50, ge=5, le=500)


class GoamlSettings(_Section):
    rentity_id: int | None = None
    institution_name: str | None = None
    swift: str | None = None
    branch: str | None = None
    reporting_user_code: str | None = None

    def entity(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StoreSettings(_Section):
    lock_wait_seconds: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="a scoring run that finds the store being written waits this long, then says who holds it "
        "(unset: THB_STORE_LOCK_WAIT, else 300 s)",
    )


class Settings(_Section):
    window: WindowSettings = WindowSettings()
    rules: RuleSettings = RuleSettings()
    network: NetworkSettings = NetworkSettings()
    patterns: dict[str, float | int] = Field(
        default_factory=dict, description="laundering-pattern settings (detectors/patterns.py)"
    )
    fusion: FusionSettings = FusionSettings()
    cases: CaseSettings = CaseSettings()
    budget: BudgetSettings = BudgetSettings()
    review: ReviewSettings = ReviewSettings()
    goaml: GoamlSettings = GoamlSettings()
    store: StoreSettings = StoreSettings()

    def as_dict(self) -> dict:
        """What a run records: every value it used, defaults included."""
        return self.model_dump(mode="json")

    def with_overrides(self, **dotted: Any) -> "Settings":
        """Flags over the file: with_overrides(**{"window.days": 30}); None leaves a value as it is."""
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            data.setdefault(section, {})[name] = value
        return parse_settings(data, "flags")


_HINTS = {
    "window_days": "now window.days",
    "disabled": "now rules.disabled",
    "categories": "now window.categories",
    "dismissed_rise": "now review.dismissed_rise",
}


class SettingsError(ValueError):
    """A config that does not fit: the message names the file and the key's path."""


def parse_settings(data: Any, source: str = "config") -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: the config must be a mapping of sections ({', '.join(Settings.model_fields)})")
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
            what += (
                " ("
                + _HINTS.get(
                    path,
                    "rule overrides go under rules:" if path.isupper() else f"sections are {', '.join(Settings.model_fields)}",
                )
                + ")"
            )
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise SettingsError(f"{source}: {path}: {what}{more}") from None


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file (None: all defaults)."""
    if not path:
        return Settings()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{p}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{p}:{where} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return parse_settings(data, str(p))
