"""`thb-signals evaluate`: how good a ranked alert table is against synthetic labels.

Budgets (recall@1%, recall@2% and everything "@2%") are a number of alerts, because an investigator's capacity is
a number of accounts: that share of the accounts scored when the caller knows how many (`accounts_scored`), else of
the labelled accounts. The two agree for the generator's labels, which label every account (background ones as
typology `none`). Labels from decisions (`thb-signals labels`) cover only the decided accounts, so there the budget is
a share of those few: the output names its base (`budget_base`) so such a figure is not read as a share of the run.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
from sklearn.metrics import average_precision_score

ALERT_COLUMNS = ("bank_id", "account_id", "score", "rank")
LABEL_COLUMNS = ("bank_id", "account_id", "typology", "role")
ID_COLUMNS = ("bank_id", "account_id", "case_id", "scenario_id", "subject_id", "network_id")  # text in a CSV, never numbers
SUBTLETY_BINS = (("low", 0.0, 1 / 3), ("mid", 1 / 3, 2 / 3), ("high", 2 / 3, 1.0001))  # scenario subtlety, 0 blatant .. 1 subtle


class EvaluationError(ValueError):
    pass


def _source(path: str | Path | pl.DataFrame, what: str) -> str:
    return what if isinstance(path, pl.DataFrame) else str(path)


def _is_parquet(p: Path) -> bool:
    """By name in any case (`.PARQUET` too) or by Parquet's magic bytes, so a Parquet file is never parsed as CSV."""
    if p.suffix.lower() == ".parquet":
        return True
    with open(p, "rb") as f:
        return f.read(4) == b"PAR1"


def _read(path: str | Path | pl.DataFrame, need: tuple[str, ...], what: str) -> pl.DataFrame:
    """The table with the `need` columns; a file that cannot be read is refused in one line that names it. A CSV's ids
    stay text, so account 0001 is not read as the number 1 in one file and matched against "0001" in the other."""
    if isinstance(path, pl.DataFrame):
        df = path
    else:
        p = Path(path)
        if not p.exists():
            raise EvaluationError(f"{what} file {p} does not exist")
        if p.is_dir():
            raise EvaluationError(f"{what} file {p} is a folder, not a CSV or Parquet file")
        parquet = p.suffix.lower() == ".parquet"
        try:
            parquet = _is_parquet(p)
            if parquet:
                df = pl.read_parquet(p)
            else:
                df = pl.read_csv(p, infer_schema_length=10_000, schema_overrides=dict.fromkeys(ID_COLUMNS, pl.Utf8))
        except pl.exceptions.NoDataError:
            raise EvaluationError(f"no {what} in {p}: the file is empty") from None
        except (pl.exceptions.PolarsError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            kind = "Parquet" if parquet else "CSV"
            raise EvaluationError(f"could not read a data file: {what} file {p}, read as {kind}: {first}") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise EvaluationError(f"{_source(path, what)}: missing column(s) {', '.join(missing)} (need {', '.join(need)})")
    return df


def _numeric(
    df: pl.DataFrame, columns: tuple[str, ...], name: str, blank_ok: bool = False, within: tuple[float, float] | None = None
) -> pl.DataFrame:
    """The columns as numbers: text that is a number ("10", " 0.9") is cast; anything else, an empty cell (unless
    `blank_ok`), NaN or a number outside `within` is refused naming the file, row and column, because text sorts "10"
    before "2" and a score must be a number."""
    kind = "a number" if within is None else f"a number from {within[0]:g} to {within[1]:g}"
    for col in columns:
        s = df[col]
        if s.dtype == pl.Boolean or not (s.dtype.is_numeric() or s.dtype in (pl.Utf8, pl.Null)):
            raise EvaluationError(f"{name}: column {col} is {s.dtype}, not numbers" + kind.removeprefix("a number"))
        x = s.str.strip_chars().cast(pl.Float64, strict=False) if s.dtype == pl.Utf8 else s.cast(pl.Float64)
        bad = x.is_null() | ~x.is_finite() | (~x.is_between(*within) if within else False)
        if blank_ok:
            bad = bad & s.is_not_null() & (s.cast(pl.Utf8).str.strip_chars() != "")
        bad = bad.fill_null(True)
        if bad.any():
            i = int(bad.arg_max())
            shown = "is empty" if s[i] is None or (isinstance(s[i], str) and not s[i].strip()) else f"{s[i]!r} is not {kind}"
            raise EvaluationError(f"{name} row {i + 1}: {col} {shown}")
        if not s.dtype.is_numeric():
            df = df.with_columns(x.alias(col))
    return df


def _one_row_per_account(lab: pl.DataFrame, name: str) -> None:
    """Each labelled account once: a repeated row would count its account twice (precision doubled by a file listed
    twice), and two rows that disagree have no right answer, so repeats are refused rather than merged."""
    key = lab.select("bank_id", "account_id").with_row_index("row")
    repeated = key.filter(pl.struct("bank_id", "account_id").is_duplicated())
    if repeated.is_empty():
        return
    accounts = repeated.select("bank_id", "account_id").unique().height
    first = repeated.row(0, named=True)
    rows = repeated.filter((pl.col("bank_id") == first["bank_id"]) & (pl.col("account_id") == first["account_id"]))["row"]
    raise EvaluationError(
        f"{name}: {accounts} account(s) labelled more than once, {repeated.height - accounts} extra row(s) "
        f"(first: {first['bank_id']}/{first['account_id']} in rows {', '.join(str(r + 1) for r in rows.head(3))}); "
        "need one row per bank_id, account_id"
    )


def _label_types(labels: pl.DataFrame, name: str) -> pl.DataFrame:
    """Ids, typology and role as text (a CSV column of digits reads as numbers), and a subtlety, where given, a number
    from 0 to 1: 'high' there failed as "cannot compare string with numeric type", naming no file or row."""
    labels = labels.with_columns(pl.col(c).cast(pl.Utf8) for c in LABEL_COLUMNS if c in labels.columns)
    if "subtlety" not in labels.columns:
        return labels
    return _numeric(labels, ("subtlety",), name, blank_ok=True, within=(0, 1))


def evaluate(alerts, labels, accounts_scored: int | None = None) -> dict:
    """The figures for a ranked alert table against labels; `accounts_scored`: the run's scored population, the base
    of the budgets (without it, the labelled accounts: see the module's docstring)."""
    a = _numeric(_read(alerts, ALERT_COLUMNS, "alerts"), ("score", "rank"), _source(alerts, "alerts"))
    raw_labels = _read(labels, LABEL_COLUMNS, "labels")
    if raw_labels.is_empty():
        raise EvaluationError(f"no labels in {_source(labels, 'labels')}")
    _one_row_per_account(raw_labels, _source(labels, "labels"))
    raw_labels = _label_types(raw_labels, _source(labels, "labels"))
    if accounts_scored is not None and (type(accounts_scored) is not int or accounts_scored < 1):
        raise EvaluationError(f"accounts scored must be a positive whole number, not {accounts_scored!r}")
    lab = raw_labels.select("bank_id", "account_id", "typology", "role")
    a = a.sort(["rank", "score"], descending=[False, True]).unique(["bank_id", "account_id"], keep="first", maintain_order=True)
    has_typ = "typology" in a.columns
    ranked = (
        a.select("bank_id", "account_id", "score", *(["typology"] if has_typ else []))
        .rename({"typology": "alert_typology"} if has_typ else {})
        .join(lab, on=["bank_id", "account_id"], how="left")
        .with_columns(pl.col("typology").fill_null("none"), pl.col("role").fill_null("unknown"))
    )
    n = lab.height
    pos = lab.filter(pl.col("typology") != "none")
    n_pos = pos.height
    is_pos = ranked["typology"] != "none"
    out: dict = {
        "accounts": n,
        "positives": n_pos,
        "alerts": a.height,
        "alerts_not_in_labels": int((ranked["role"] == "unknown").sum()),
    }
    for k in (50, 100, 200):
        out[f"precision@{k}"] = round(float(is_pos.head(k).sum()) / k, 4)
    base = accounts_scored if accounts_scored is not None else n
    out["budget_base"] = "accounts scored" if accounts_scored is not None else "labelled accounts"
    out["budget_base_accounts"] = base
    for pct in (1, 2):
        b = math.ceil(base * pct / 100)
        out[f"recall@{pct}%"] = round(float(is_pos.head(b).sum()) / n_pos, 4) if n_pos else None
        out[f"budget@{pct}%"] = b
    b2 = out["budget@2%"]
    top = ranked.head(b2)
    out["recall_by_typology@2%"] = {
        t: round(top.filter(pl.col("typology") == t).height / m, 4) for t, m in sorted(pos.group_by("typology").len().iter_rows())
    }
    out["recall_by_role@2%"] = {
        f"{t}/{r}": round(top.filter((pl.col("typology") == t) & (pl.col("role") == r)).height / m, 4)
        for t, r, m in sorted(pos.group_by("typology", "role").len().iter_rows())
    }
    out["recall_by_role_any_typology@2%"] = {
        r: round(top.filter((pl.col("role") == r) & (pl.col("typology") != "none")).height / m, 4)
        for r, m in sorted(pos.group_by("role").len().iter_rows())
    }
    out["recall_by_subtlety@2%"] = recall_by_subtlety(top, raw_labels)
    out["recall_by_pattern@2%"] = recall_by_pattern(top, raw_labels)
    out["hard_negative_share@2%"] = round(top.filter(pl.col("role") == "hard_negative").height / b2, 4) if b2 else None
    scores = lab.join(a.select("bank_id", "account_id", "score"), on=["bank_id", "account_id"], how="left").with_columns(
        pl.col("score").fill_null(0.0)
    )
    y = (scores["typology"] != "none").to_numpy()
    out["average_precision"] = round(float(average_precision_score(y, scores["score"].to_numpy())), 4) if n_pos else None
    if has_typ:
        tp = ranked.filter(pl.col("typology") != "none")
        out["typology_accuracy"] = round(float((tp["alert_typology"] == tp["typology"]).mean()), 4) if tp.height else None
    else:
        out["typology_accuracy"] = None
    out.update(case_metrics(a.head(b2), raw_labels))
    return out


def recall_by_subtlety(top: pl.DataFrame, labels: pl.DataFrame) -> dict:
    """Recall of planted accounts in the budget per subtlety bin low/mid/high (thirds of 0..1); empty bins and
    labels without a subtlety column are left out."""
    if "subtlety" not in labels.columns:
        return {}
    pos = labels.filter((pl.col("typology") != "none") & pl.col("subtlety").is_not_null()).select(
        "bank_id", "account_id", "subtlety"
    )
    hit = pos.join(top.select("bank_id", "account_id"), on=["bank_id", "account_id"], how="semi")
    out = {}
    for name, lo, hi in SUBTLETY_BINS:
        m = pos.filter(pl.col("subtlety").is_between(lo, hi, closed="left")).height
        if m:
            h = hit.filter(pl.col("subtlety").is_between(lo, hi, closed="left")).height
            out[name] = round(h / m, 4)
    return out


def recall_by_pattern(top: pl.DataFrame, labels: pl.DataFrame) -> dict:
    """Per laundering pattern (labels column `pattern`, synthetic/laundering.py): the share of its accounts in `top`."""
    if "pattern" not in labels.columns:
        return {}
    lab = labels.filter(pl.col("pattern").is_not_null()).select("bank_id", "account_id", "pattern")
    hit = lab.join(top.select("bank_id", "account_id").unique(), on=["bank_id", "account_id"], how="semi")
    got = dict(hit.group_by("pattern").len().iter_rows())
    return {p: round(got.get(p, 0) / m, 4) for p, m in sorted(lab.group_by("pattern").len().iter_rows())}


def case_metrics(alerts: pl.DataFrame, labels: pl.DataFrame) -> dict:
    """How well cases follow the planted scenarios, among the alerts in the budget.

    grouping: per scenario with two or more alerted accounts, the largest share of them in one case
    (mean, and the share of scenarios at 0.9 or more); purity: per case of two or more accounts, the
    share that belongs to its main scenario (background accounts each count as their own)."""
    if "case_id" not in alerts.columns or "scenario_id" not in labels.columns:
        return {"case_grouping@2%": None, "scenarios_grouped@2%": None, "case_purity@2%": None}
    x = alerts.select("bank_id", "account_id", "case_id").join(
        labels.select("bank_id", "account_id", "scenario_id", "typology"), on=["bank_id", "account_id"], how="left"
    )
    planted = x.filter(pl.col("typology").is_not_null() & (pl.col("typology") != "none"))
    per = (
        planted.group_by("scenario_id", "case_id")
        .len()
        .group_by("scenario_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("grouping"), pl.col("len").sum().alias("alerted"))
        .filter(pl.col("alerted") >= 2)
    )
    purity = (
        x.with_columns(pl.coalesce("scenario_id", pl.lit("bg-") + pl.col("account_id")).alias("sid"))
        .group_by("case_id", "sid")
        .len()
        .group_by("case_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("purity"), pl.col("len").sum().alias("size"))
        .filter(pl.col("size") >= 2)
    )
    return {
        "case_grouping@2%": round(float(per["grouping"].mean()), 4) if per.height else None,
        "scenarios_grouped@2%": round(float((per["grouping"] >= 0.9).mean()), 4) if per.height else None,
        "case_purity@2%": round(float(purity["purity"].mean()), 4) if purity.height else None,
    }


def format_table(m: dict) -> str:
    rows = [("accounts / positives / alerts", f"{m['accounts']} / {m['positives']} / {m['alerts']}")]
    for k in ("precision@50", "precision@100", "precision@200"):
        rows.append((k, m[k]))
    for pct in (1, 2):
        base = f": {pct}% of {m['budget_base_accounts']} {m['budget_base']}" if "budget_base" in m else ""
        rows.append((f"recall@{pct}% ({m[f'budget@{pct}%']} alerts{base})", m[f"recall@{pct}%"]))
    rows += [(f"  recall@2% {t}", v) for t, v in m["recall_by_typology@2%"].items()]
    rows += [(f"  recall@2% {t}", v) for t, v in m["recall_by_role@2%"].items()]
    rows += [(f"  recall@2% any {r}", v) for r, v in m["recall_by_role_any_typology@2%"].items()]
    bins = {name: f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}" for name, lo, hi in SUBTLETY_BINS}
    rows += [(f"  recall@2% subtlety {b} {bins[b]}", v) for b, v in m.get("recall_by_subtlety@2%", {}).items()]
    rows += [(f"  recall@2% pattern {p}", v) for p, v in m.get("recall_by_pattern@2%", {}).items()]
    rows += [
        ("average precision", m["average_precision"]),
        ("hard-negative share @2%", m["hard_negative_share@2%"]),
        ("typology accuracy (true positives)", m["typology_accuracy"]),
        ("cases: scenario grouping @2% (mean)", m.get("case_grouping@2%")),
        ("cases: scenarios >= 90% in one case @2%", m.get("scenarios_grouped@2%")),
        ("cases: purity @2% (mean)", m.get("case_purity@2%")),
    ]
    if m["alerts_not_in_labels"]:
        rows.append(("alerts on unlabelled accounts", m["alerts_not_in_labels"]))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{width}}  {'-' if v is None else v}" for k, v in rows)


# FIU screening: a ranked subject list (fiu_subjects) against the generator's planted networks (fiu_labels).
SUBJECT_COLUMNS = ("subject_id", "rank")
SUBJECT_LABEL_COLUMNS = ("subject_id", "network_id", "typology")


def evaluate_subjects(subjects, labels, first: int = 100, budget_share: float = 0.05) -> dict:
    """Of the first `first` subjects, the share that is trafficking-related; and the share of planted networks with at
    least one subject within the review budget (a share of all subjects screened: an analyst opens the network from it)."""
    s = _numeric(_read(subjects, SUBJECT_COLUMNS, "subjects"), ("rank",), _source(subjects, "subjects"))
    s = s.sort("rank").unique("subject_id", keep="first", maintain_order=True)
    lab = (
        _read(labels, SUBJECT_LABEL_COLUMNS, "labels")
        .filter(pl.col("typology") != "none")
        .select("subject_id", pl.col("network_id").alias("planted_network"), pl.col("typology").alias("planted_typology"))
    )
    ranked = s.select("subject_id", "rank").join(lab, on="subject_id", how="left", maintain_order="left")
    budget = max(1, math.ceil(s.height * budget_share))
    nets = lab["planted_network"].n_unique()
    found = ranked.head(budget).filter(pl.col("planted_network").is_not_null())["planted_network"].unique()
    per_typ = (
        lab.unique("planted_network")
        .group_by("planted_typology")
        .agg(pl.col("planted_network").is_in(found.implode()).mean().round(4).alias("recall"))
    )
    first_n = ranked.head(first)
    return {
        "subjects": s.height,
        "planted_subjects": lab.height,
        "planted_networks": nets,
        f"trafficking_share@first{first}": round(float(first_n["planted_network"].is_not_null().mean()), 4)
        if first_n.height
        else None,
        f"budget@{budget_share:.0%}": budget,
        f"network_recall@{budget_share:.0%}": round(found.len() / nets, 4) if nets else None,
        "network_recall_by_typology": dict(sorted(per_typ.iter_rows())),
        "subject_recall@budget": round(float(ranked.head(budget)["planted_network"].is_not_null().sum()) / lab.height, 4)
        if lab.height
        else None,
    }
