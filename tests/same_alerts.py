"""One comparison for two scoring runs that must agree (sharded or nightly against one process from scratch)."""

CASE_ID = r"C-run-\d{8}T\d{6}-[0-9a-f]{6}-\d{5}"  # 'C-' + the case's oldest alert id, which names its run


def assert_same_alerts(one, other):
    """Same accounts, ranks, rules, evidence, reasons, roles, cases and rule rates; scores equal to 1e-9."""
    key = ["bank_id", "account_id"]
    a, b = one.alerts.sort(key), other.alerts.sort(key)
    assert a.height > 20 and a.select(key).equals(b.select(key))
    for col in ("rank", "typology", "rules", "evidence", "case_role"):
        assert a[col].to_list() == b[col].to_list(), col
    assert a["reasons"].str.replace_all(CASE_ID, "C-").to_list() == b["reasons"].str.replace_all(CASE_ID, "C-").to_list()
    assert (a["score"] - b["score"]).abs().max() <= 1e-9 and (a["anomaly"] - b["anomaly"]).abs().max() <= 1e-9
    cases = ["typology", "accounts", "roles"]
    assert one.cases.height > 0 and one.cases.select(cases).sort("accounts").equals(other.cases.select(cases).sort("accounts"))
    assert one.rule_rates == other.rule_rates
