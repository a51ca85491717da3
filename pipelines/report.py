"""Validation results as text for the terminal and as one self-contained HTML page for a bank's data team."""

from __future__ import annotations

import html
from datetime import datetime, timezone

from pipelines.validation import Validation


def _examples(r, identifier: bool) -> str:
    shown = []
    for row, value in r.examples:
        val = "empty" if value is None else repr(value if not identifier else value[:4] + "…")
        shown.append(f"row {row} {val}")
    return ", ".join(shown)


def _file_name(v: Validation, file: str) -> str:
    p = v.submission.files.get(file)
    return p.name if p else file


def summary_text(v: Validation) -> str:
    sub = v.submission
    if v.fault is not None:
        return f"{sub.path}: REJECTED, nothing loaded\n  file {v.fault.file}: {v.fault.fault}: {v.fault.detail}"
    head = f"{sub.path}: {'VALID' if v.ok else 'INVALID ROWS'}"
    if sub.bank_id:
        head += f" (bank {sub.bank_id}"
        head += f", period {sub.period[0]}..{sub.period[1]})" if sub.period else ")"
    lines = [head]
    for file, n in v.rows.items():
        bad = v.rejected_rows.get(file, 0)
        lines.append(f"  {_file_name(v, file)}: {n} rows, {bad} to quarantine, {n - bad} accepted")
    for w in v.warnings:
        lines.append(f"  warning: {w}")
    failing = [r for r in v.results if r.failing]
    if failing:
        lines.append("  failing checks:")
        from schemas.contract import columns

        for r in failing:
            ident = any(c.identifier for c in columns(r.check.file, True) if c.name == r.check.column)
            lines.append(
                f"    {_file_name(v, r.check.file)} column {r.check.column}: {r.failing} rows {r.check.reason} "
                f"[{r.check.id}]; {_examples(r, ident)}"
            )
    else:
        lines.append(f"  all {len(v.results)} row checks pass")
    if v.gx:
        bad = [g for g in v.gx if not g["success"]]
        lines.append(
            f"  Great Expectations suite on the first {max(g['sample_rows'] for g in v.gx)} rows per file: "
            f"{len(v.gx) - len(bad)}/{len(v.gx)} expectations met"
            + (f" (unmet: {', '.join(sorted({g['check_id'] for g in bad}))})" if bad else "")
        )
    return "\n".join(lines)


def html_report(v: Validation) -> str:
    e = html.escape
    sub = v.submission
    status = "REJECTED" if v.fault else ("VALID" if v.ok else "INVALID ROWS")
    color = {"VALID": "#1b7f3b", "INVALID ROWS": "#b36b00", "REJECTED": "#b00020"}[status]
    parts = [
        f"""<!doctype html><html><head><meta charset="utf-8"><title>Validation: {e(str(sub.path.name))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;width:100%;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}th{{background:#f2f2f2}}.fail{{color:#b00020}}.ok{{color:#1b7f3b}}</style>
</head><body><h1>Submission {e(str(sub.path.name))}: <span style="color:{color}">{status}</span></h1>
<p>Contract version 1 · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by thb-signals validate</p>"""
    ]
    if v.fault:
        parts.append(
            f"<p class='fail'><b>File {e(v.fault.file)}</b>: {e(v.fault.fault)}: {e(v.fault.detail)}</p>"
            "<p>Nothing from this submission is loaded. Fix the file and submit again.</p>"
        )
    else:
        if sub.bank_id:
            parts.append(
                f"<p>Bank <b>{e(sub.bank_id)}</b>"
                + (f", period {sub.period[0]} to {sub.period[1]}" if sub.period else "")
                + "</p>"
            )
        parts.append(
            "<h2>Files</h2><table><tr><th>file</th><th>rows</th><th>to quarantine</th><th>accepted</th><th>sha256</th></tr>"
        )
        for file, n in v.rows.items():
            bad = v.rejected_rows.get(file, 0)
            name = _file_name(v, file)
            parts.append(
                f"<tr><td>{e(name)}</td><td>{n}</td><td>{bad}</td><td>{n - bad}</td><td><code>{e(sub.sha256.get(name, ''))}</code></td></tr>"
            )
        parts.append("</table>")
        for w in v.warnings:
            parts.append(f"<p>Warning: {e(w)}</p>")
        parts.append(
            "<h2>Row checks (every row)</h2><table><tr><th>check</th><th>file</th><th>column</th><th>rule</th>"
            "<th>failing rows</th><th>examples (row: value)</th></tr>"
        )
        for r in v.results:
            cls = "fail" if r.failing else "ok"
            ex = "; ".join(f"{row}: {'empty' if val is None else e(val)}" for row, val in r.examples)
            parts.append(
                f"<tr class='{cls}'><td>{e(r.check.id)}</td><td>{e(_file_name(v, r.check.file))}</td>"
                f"<td>{e(r.check.column)}</td><td>{e(r.check.reason)}</td><td>{r.failing}</td><td>{ex}</td></tr>"
            )
        parts.append("</table><p>Row numbers count data rows from 1 (the CSV header is not a row).</p>")
        if v.gx:
            parts.append(
                f"<h2>Great Expectations suite (first {max(g['sample_rows'] for g in v.gx)} rows per file)</h2>"
                "<table><tr><th>file</th><th>expectation</th><th>check</th><th>met</th><th>unexpected</th></tr>"
            )
            for g in v.gx:
                parts.append(
                    f"<tr class='{'ok' if g['success'] else 'fail'}'><td>{e(g['file'])}</td><td>{e(g['expectation'])}</td>"
                    f"<td>{e(str(g['check_id']))}</td><td>{'yes' if g['success'] else 'no'}</td><td>{g['unexpected_count']}</td></tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def print_alerts(alerts, top: int = 15) -> None:
    """The top alerts as a table an investigator reads (pseudonymous ids shortened, never raw)."""
    import textwrap

    print(f"{'rank':>4}  {'score':>5}  {'bank':<7} {'account':<10} {'typology':<22} reasons")
    for row in alerts.head(top).iter_rows(named=True):
        reasons = textwrap.shorten(row["reasons"] or "", width=140, placeholder=" ...")
        print(
            f"{row['rank']:>4}  {row['score']:.3f}  {row['bank_id']:<7} {row['account_id'][:8] + '…':<10} {row['typology']:<22} {reasons}"
        )
