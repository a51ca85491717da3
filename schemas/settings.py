"""Typed settings: every tunable value of a run, with its default defined once, here.

A config file (YAML) holds any subset of the sections below; the loader rejects unknown keys and wrong
types or ranges with the key's path ("fusion.min_score: ..."), so a typo never passes silently. Command-line
flags override the file (`Settings.with_overrides`), and each run records the values it used
(`Settings.as_dict`). Rule parameters are checked against the rule catalogue by detectors.rules.rule_set,
which owns them; here they are only required to be numbers.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas import strict_yaml

RuleParams = dict[str, float | int]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Category(_Section):
    """A category's MCCs and name keywords; given in a config, they replace the built-in ones of that category."""

    mccs: tuple[Annotated[str, Field(pattern=r"^[0-9]{4}$")], ...] = ()
    # matched inside the lower-cased name: an empty keyword is in every name, an upper-case one in none
    names: tuple[Annotated[str, Field(min_length=2, pattern=r"^[^A-Z]*$")], ...] = ()


class WindowSettings(_Section):
    days: int = Field(90, ge=7, le=731, description="the scoring window: the last N days in the store")
    categories: dict[str, Category] = Field(
        default_factory=dict, description="merchant/counterparty dictionaries; each replaces its category's built-in lists"
    )
    as_of: date | None = Field(
        None,
        ge=date(1900, 1, 1),  # bounded: the window's arithmetic on 0001-01-01 or 9999-12-31 overflowed mid-run
        le=date(2999, 12, 31),
        description="the window ends on this day (UTC), to replay a past month; null: the last booking",
    )
    keep_parts: bool = Field(
        True, description="keep the window and the features' per-account parts in the store: the next day's run adds the new day"
    )


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
                    raise ValueError(f"{rule_id}.{name}: expected a number, got a {type(v).__name__}")
                if isinstance(v, int) and abs(v) > 10**15:  # beyond what a float holds exactly (or at all)
                    raise ValueError(f"{rule_id}.{name}: expected a number of at most 15 digits")
                if not math.isfinite(v):
                    raise ValueError(f"{rule_id}.{name}: expected a finite number, got {v!r}")
                if name == "severity" and v not in (1, 2, 3):
                    raise ValueError(f"{rule_id}.severity: expected 1, 2 or 3, got {v!r}")
        return data

    def overrides(self) -> dict[str, RuleParams]:
        return dict(self.model_extra or {})


class NetworkSettings(_Section):
    max_group: int = Field(30, ge=2, le=10_000, description="shared keys with more accounts are offices, not rings")


class FusionSettings(_Section):
    single_rule_factor: float = Field(0.5, ge=0, le=1)
    link_only_factor: float = Field(
        0.5, ge=0, le=1, description="an account whose only rule is a link to an escalated or reported one: share of a lone rule"
    )
    anomaly_weight: float = Field(0.5, ge=0, le=1)
    anomaly_single_weight: float = Field(0.1, ge=0, le=1)
    anomaly_only_weight: float = Field(0.2, ge=0, le=1)
    anomaly_floor: float = Field(0.95, ge=0, lt=1)
    min_score: float = Field(0.25, ge=0, le=1, description="alert threshold, a floor under the budget")
    rule_rate_ceiling: float = Field(0.005, gt=0, le=1, description="a rule firing on more of a bank's accounts is flooding")
    rule_rate_ceilings: dict[str, Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None, description="per rule id: its own ceiling (a share of accounts, above 0 and at most 1)"
    )
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
        0.02, gt=0, le=1, description="most alerts per bank per run, as a share of scored accounts (null: off)"
    )
    max_alerts: int | None = Field(None, ge=1, description="most alerts per bank per run (null: no absolute cap)")
    min_alerts: int = Field(10, ge=0, description="room for at least this many in a small extract")


class ReviewSettings(_Section):
    dismissed_rise: float = Field(
        0.15, ge=-1, le=1, description="a dismissed account is raised again only if its score rises this much"
    )
    page_size: int = Field(50, ge=5, le=500)


class RerankSettings(_Section):
    """The re-ranker learned from investigators' decisions (detectors/reranker.py); without a fitted model nothing changes."""

    enabled: bool = Field(True, description="blend a fitted re-ranker into the score (false: today's ranking)")
    min_positives: int = Field(10, ge=1, le=100_000, description="escalated or reported decisions needed before fitting")
    min_negatives: int = Field(10, ge=1, le=100_000, description="dismissals (explained, lawful business) needed before fitting")
    max_weight: float = Field(0.6, ge=0, le=1, description="the most the re-ranker can move a score, as a share of it")
    half_weight_decisions: int = Field(
        100, ge=1, le=1_000_000, description="decisions at which the re-ranker gets half of max_weight (weight grows with them)"
    )
    unlabelled_per_positive: int = Field(
        4,
        ge=0,
        le=100,
        description="with too few dismissals: undecided alerts sampled per escalated account as unlabelled "
        "(positive-unlabelled learning); 0: wait for min_negatives dismissals",
    )


# goAML's text fields: printable text that XML can hold (a control character made the export fail at the end)
_GoamlText = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class GoamlSettings(_Section):
    """The reporting entity, as registered with FIU-Nederland (checked when read, not when a report is written)."""

    rentity_id: int | None = Field(None, ge=1, le=2_147_483_647)
    institution_name: _GoamlText | None = None
    swift: str | None = Field(None, pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    branch: _GoamlText | None = None
    reporting_user_code: _GoamlText | None = None

    def entity(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RetentionSettings(_Section):
    """How long each kind of data is kept (`thb-signals purge`, pipelines/purge.py); docs/privacy.md per table."""

    window_margin_days: int = Field(
        30, ge=0, le=3650, description="bookings and accounts: the scoring window (window.days) plus this margin"
    )
    quarantine_days: int = Field(30, ge=1, le=365, description="rows that failed a check: long enough to correct a submission")
    dismissed_days: int = Field(
        365, ge=30, le=3650, description="dismissed alerts and their evidence, and FIU screening results, after the decision"
    )
    legal_years: int = Field(
        5, ge=5, le=30, description="escalated and reported alerts, decisions, the audit and access logs (Wwft: at least 5 years)"
    )

    @model_validator(mode="after")
    def _dismissed_within_legal(self) -> "RetentionSettings":
        if self.dismissed_days > self.legal_years * 365:
            raise ValueError(f"dismissed_days ({self.dismissed_days}) must not exceed legal_years ({self.legal_years}) in days")
        return self


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
    rerank: RerankSettings = RerankSettings()
    goaml: GoamlSettings = GoamlSettings()
    retention: RetentionSettings = RetentionSettings()
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
        bounds = _allowed_range(first["loc"])
        if bounds and bounds not in what:
            what += f" (allowed: {bounds})"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise SettingsError(f"{source}: {path}: {what}{more}") from None


def _allowed_range(loc: tuple) -> str | None:
    """The declared bounds of the field at `loc` ("0 <= x <= 1"), so a refused value names what would pass."""
    model: Any = Settings
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    if info is None:
        return None
    low = high = None
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            low = f"{m.ge} <= "
        if getattr(m, "gt", None) is not None:
            low = f"{m.gt} < "
        if getattr(m, "le", None) is not None:
            high = f" <= {m.le}"
        if getattr(m, "lt", None) is not None:
            high = f" < {m.lt}"
    if low is None and high is None:
        return None
    return f"{low or ''}value{high or ''}"


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file (None: all defaults)."""
    if not path:
        return Settings()
    p = Path(path)
    try:
        data = strict_yaml.load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{p}: no such config file") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{p}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{p}:{where} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except ValueError as e:  # a YAML date that is no day (2026-02-30)
        raise SettingsError(f"{p}: {str(e).splitlines()[0]}") from None
    return parse_settings(data, str(p))
