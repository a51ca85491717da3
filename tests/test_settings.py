"""Typed settings: defaults once, unknown keys and wrong types refused with the key's path, flags over the file."""

import pytest

from schemas.settings import Settings, SettingsError, load_settings, parse_settings


def test_defaults_and_the_shipped_example_load():
    s = Settings()
    assert (s.window.days, s.fusion.min_score, s.cases.min_eur, s.review.dismissed_rise) == (90, 0.25, 500.0, 0.15)
    ex = load_settings("detectors/config.example.yaml")
    assert ex.rules.overrides()["SE07_CLIENT_PAYMENTS"]["min_senders"] == 8
    assert ex.as_dict()["window"]["days"] == ex.window.days


@pytest.mark.parametrize(
    "data, says",
    [
        ({"fusion": {"min_score": "high"}}, "fusion.min_score: Input should be a valid number"),
        ({"fusion": {"min_scor": 0.3}}, "fusion.min_scor: unknown key"),
        ({"window": {"days": 3}}, "window.days: Input should be greater than or equal to 7"),
        ({"budget": {"share": 2}}, "budget.share: Input should be less than or equal to 1"),
        ({"rules": {"SE07_CLIENT_PAYMENTS": {"min_senders": "eight"}}}, "SE07_CLIENT_PAYMENTS.min_senders: expected a number"),
        ({"rules": {"SE07_CLIENT_PAYMENTS": 8}}, "SE07_CLIENT_PAYMENTS: expected a mapping"),
        ({"rules": {"SE10_TAXI": {"min_per_30d": float("nan")}}}, "SE10_TAXI.min_per_30d: expected a finite number"),
        ({"rules": {"SE10_TAXI": {"severity": 7}}}, "SE10_TAXI.severity: expected 1, 2 or 3"),
        ({"window": {"as_of": "9999-12-31"}}, "window.as_of: Input should be less than or equal to 2999-12-31"),
        ({"fusion": {"rule_rate_ceilings": {"SE10_TAXI": 5}}}, "fusion.rule_rate_ceilings.SE10_TAXI: Input should be less"),
        ({"SE07_CLIENT_PAYMENTS": {"min_senders": 8}}, "SE07_CLIENT_PAYMENTS: unknown key (rule overrides go under rules:)"),
        ({"window_days": 30}, "window_days: unknown key (now window.days)"),
        (["window"], "must be a mapping of sections"),
    ],
)
def test_bad_values_are_refused_with_the_path(data, says):
    with pytest.raises(SettingsError) as e:
        parse_settings(data, "my.yaml")
    assert str(e.value).startswith("my.yaml: ") and says in str(e.value)


def test_broken_yaml_and_missing_file_are_one_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("fusion:\n  min_score: [0.3\n")
    with pytest.raises(SettingsError, match=r"c.yaml: line \d+ not valid YAML"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="no such config file"):
        load_settings(tmp_path / "nope.yaml")


def test_flags_override_the_file_and_are_checked(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window:\n  days: 60\nfusion:\n  min_score: 0.4\n")
    s = load_settings(cfg).with_overrides(**{"window.days": 30, "fusion.min_score": None})
    assert (s.window.days, s.fusion.min_score) == (30, 0.4)
    with pytest.raises(SettingsError, match="window.days"):
        s.with_overrides(**{"window.days": 0})
