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
        # a sweep: an empty keyword is in every name (a rule fired on every account), an upper-case one in none
        ({"window": {"categories": {"adult_ads": {"names": [""]}}}}, "adult_ads.names.0: String should have at least 2"),
        ({"window": {"categories": {"adult_ads": {"names": ["Escort"]}}}}, "adult_ads.names.0: String should match"),
        ({"window": {"categories": {"adult_ads": {"mccs": ["72a3"]}}}}, "adult_ads.mccs.0: String should match"),
        # a sweep: a negative id, or a control character, failed only when a report was written
        ({"goaml": {"rentity_id": -1}}, "goaml.rentity_id: Input should be greater than or equal to 1"),
        ({"goaml": {"institution_name": "Bank\u0000"}}, "goaml.institution_name: String should match"),
        ({"goaml": {"swift": "not a bic"}}, "goaml.swift: String should match"),
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


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "rules:\n  disabled: [SE10_TAXI]\nfusion: {}\nrules:\n  SE10_TAXI: {min_per_30d: 1}\n",
            "line 4: 'rules' is given twice",
        ),
        ("fusion: {min_score: 0.3, min_score: 0.2}\n", "line 1: 'min_score' is given twice"),
        ("rules:\n  SE10_TAXI: {min_per_30d: &n 3}\n  SE02_HOTELS: {min_nights: *n}\n", "line 2: an anchor (&n)"),
        (BOMB, "line 1: an anchor (&a)"),
        ("window: {as_of: 2026-02-30}\n", "c.yaml: day is out of range for month"),
        ("rules:\n  ? [a]\n  : 1\n", "line 2: a key must be a plain value, not a list or mapping"),
        (
            "rules:\n  SE10_TAXI: {min_per_30d: 1" + "0" * 400 + "}\n",
            "SE10_TAXI.min_per_30d: expected a number of at most 15 digits",
        ),
    ],
)
def test_a_key_given_twice_an_alias_or_an_impossible_day_is_one_line_naming_the_file(tmp_path, text, says):
    """Found by a hostile-input sweep: a second `rules:` replaced the first silently (the rules it disabled ran again),
    a 439-byte file of nested aliases ran the machine out of memory, and an impossible day or a 400-digit number
    ended in a line that named no file, or a traceback."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(SettingsError) as e:
        load_settings(cfg)
    assert says in str(e.value) and str(cfg) in str(e.value) and len(str(e.value)) < 300
    cfg.write_bytes(b"fusion: {min_score: 0.3}\n# caf\xe9\n")
    with pytest.raises(SettingsError, match="c.yaml: not UTF-8 text"):
        load_settings(cfg)


@pytest.mark.parametrize(
    "patterns, says",
    [
        ({"min_amount": float("nan")}, "patterns.min_amount: expected 0.01 to 1e+09"),
        ({"keep_min": float("inf")}, "patterns.keep_min: expected 0.01 to 1"),
        ({"hop_hours": 100000000000}, "patterns.hop_hours: expected 1 to 8760"),
        ({"hop_hours": 1.5}, "patterns.hop_hours: expected a whole number"),
        ({"max_cycles": -5}, "patterns.max_cycles: expected 1 to 1e+07"),
        ({"keep_min": 0.9, "keep_max": 1.0, "min_amount": 1}, None),
        ({"keep_min": 1.0, "keep_max": 1.0}, None),
        ({"keep_min": 0.95, "keep_max": 1.0, "hop_hours": 48.0}, None),
        ({"hop_hour": 12}, "config 'patterns' has no setting(s) hop_hour"),
    ],
)
def test_pattern_settings_are_numbers_of_their_kind_within_a_range(patterns, says):
    """Found by a sweep: `patterns:` values went into the patterns' SQL unchecked: NaN and infinity were a DuckDB
    binder traceback and a failed run, 10^11 hours an interval out of range, 1.5 hours and -5 cycles ran silently."""
    from detectors.settings_check import check

    s = parse_settings({"patterns": patterns}, "p.yaml")
    if says is None:
        check(s, "p.yaml")
        return
    with pytest.raises(SettingsError) as e:
        check(s, "p.yaml")
    assert str(e.value).startswith("p.yaml: ") and says in str(e.value)


def test_a_ceiling_for_a_rule_that_is_not_one_and_bad_flow_parameters_are_refused():
    """Found by a sweep: a per-rule ceiling for SE10_TAXII (a typo) was taken silently; a flow's `mode: bogus` ran as
    fused and recorded 'bogus', and `shards: -3` ran as one shard."""
    from detectors.settings_check import check, check_run

    with pytest.raises(SettingsError, match="fusion.rule_rate_ceilings: no rule SE10_TAXII"):
        check(parse_settings({"fusion": {"rule_rate_ceilings": {"SE10_TAXII": 0.01}}}, "c.yaml"), "c.yaml")
    check(parse_settings({"fusion": {"rule_rate_ceilings": {"SE10_TAXI": 0.01, "PT_CYCLE": 0.02}}}, "c.yaml"), "c.yaml")
    with pytest.raises(SettingsError, match="window.categories: no category adult_adz; there are adult_ads"):
        check(parse_settings({"window": {"categories": {"adult_adz": {"names": ["escort"]}}}}, "c.yaml"), "c.yaml")
    with pytest.raises(SettingsError, match="mode: 'bogus' is not one of fused, rules, anomaly"):
        check_run("bogus", 1)
    for shards in (-3, 0, True, 2.5):
        with pytest.raises(SettingsError, match="shards: "):
            check_run("fused", shards)
    check_run("rules", 8)
