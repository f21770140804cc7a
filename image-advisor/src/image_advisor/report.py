"""The advisor's findings as a reader sees them: the terminal table, the Markdown report, two images compared.

    print_findings(report)                 the ranked findings at the end of `make diagnose`
    markdown(report, diff=None)            results/diagnose/<name>.md, to paste into a pull request
    compare_reports(baseline, report)      what grew, shrank, appeared and went; findings fixed and introduced
    gate(report, fail_above, diff, max_growth_pct) -> reasons to fail (empty: pass)

Reports are the dicts `make diagnose` writes to results/diagnose/<name>.json (docs/diagnose.md).
"""

from __future__ import annotations

from image_advisor.units import human_bytes, print_table

CHANGE_MIN_BYTES = 1_000_000  # rows of a comparison smaller than this are left out
KINDS = {"categories": "category", "layers": "layer", "distributions": "distribution", "os_packages": "OS package"}


def _finding_rows(findings: list[dict]) -> list[list[str]]:
    rows = []
    for n, f in enumerate(findings, 1):
        saves = human_bytes(f["bytes"]) if f["bytes"] else "-"
        if f.get("seconds"):
            saves += f", {f['seconds']:.2f} s/start"
        rows.append([str(n), f["rule"], saves, f["confidence"], f["demo"] or "-", f["title"][:70]])
    return rows


def print_findings(report: dict) -> None:
    advice = report["advice"]
    total = advice["total_bytes"]
    print(f"\n== what to change: {len(advice['findings'])} findings, {human_bytes(advice['addressable_bytes'])} "
          f"of {human_bytes(total)} addressable ({advice['addressable_share']:.0%}), each byte counted once ==")
    trace = report.get("trace") or {}
    if trace.get("ok"):
        print(f"trace: {trace['processes']} Python processes, {trace['modules_imported']} modules imported, "
              f"{trace['files_mapped']} files mapped, requests: "
              + ", ".join(f"{r['request']} -> {r['status'] or 'no answer'}" for r in trace["requests"]))
    print_table(["#", "rule", "saves", "confidence", "shown in", "finding"], _finding_rows(advice["findings"]))
    for n, f in enumerate(advice["findings"], 1):
        print(f"\n{n}. {f['rule']}: {f['title']}")
        for line in f["evidence"]:
            print(f"   - {line}")
        print(f"   fix: {f['fix']}")
    for note in advice["notes"]:
        print(f"\nnote: {note}")


def markdown(report: dict, diff: dict | None = None) -> str:
    advice = report["advice"]
    lines = [f"### `{report['image']}`: {human_bytes(advice['total_bytes'])}, "
             f"{human_bytes(advice['addressable_bytes'])} addressable ({advice['addressable_share']:.0%})", ""]
    if diff:
        lines += [f"Against `{diff['baseline']}` ({human_bytes(diff['baseline_bytes'])}): "
                  f"{_signed(diff['total_change'])} ({diff['growth_pct']:+.1f} %).", ""]
        if diff["fixed"] or diff["introduced"]:
            lines += [f"Fixed: {', '.join(diff['fixed']) or 'none'}. "
                      f"Introduced: {', '.join(diff['introduced']) or 'none'}.", ""]
        lines += ["| change | what | before | after | difference |", "|---|---|---:|---:|---:|"]
        for kind in ("categories", "layers", "distributions", "os_packages"):
            for row in diff[kind]:
                lines.append(f"| {KINDS[kind]} | {row['name']} | {human_bytes(row['before'])} | "
                             f"{human_bytes(row['after'])} | {_signed(row['after'] - row['before'])} |")
        lines.append("")
    lines += ["| # | rule | saves | confidence | shown in | finding | fix |", "|---|---|---:|---|---|---|---|"]
    for n, f in enumerate(advice["findings"], 1):
        saves = human_bytes(f["bytes"]) if f["bytes"] else "-"
        saves += f", {f['seconds']:.2f} s" if f.get("seconds") else ""
        demo = f"`{f['demo']}`" if f["demo"] else "-"
        lines.append(f"| {n} | `{f['rule']}` | {saves} | {f['confidence']} | {demo} | {f['title']} | {f['fix']} |")
    lines += [""] + [f"Note: {note}" for note in advice["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human_bytes(abs(n))


def _changes(before: dict[str, int], after: dict[str, int]) -> list[dict]:
    rows = [{"name": name, "before": before.get(name, 0), "after": after.get(name, 0)}
            for name in sorted(set(before) | set(after))]
    rows = [r for r in rows if abs(r["after"] - r["before"]) >= CHANGE_MIN_BYTES]
    return sorted(rows, key=lambda r: -abs(r["after"] - r["before"]))


def _layers(report: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer in report["layers"]:
        key = layer.get("instruction") or layer["created_by"][:80]
        out[key] = out.get(key, 0) + layer["size_bytes"]
    return out


def compare_reports(baseline: dict, report: dict) -> dict:
    """What changed from baseline to report, by category, layer, distribution and OS package, and in findings."""
    before_findings = {f["rule"]: f["bytes"] for f in baseline["advice"]["findings"]}
    after_findings = {f["rule"]: f["bytes"] for f in report["advice"]["findings"]}
    total_change = report["total_bytes"] - baseline["total_bytes"]
    return {
        "baseline": baseline["image"],
        "baseline_bytes": baseline["total_bytes"],
        "total_change": total_change,
        "growth_pct": round(100 * total_change / max(baseline["total_bytes"], 1), 2),
        "categories": _changes(baseline["composition"]["categories"], report["composition"]["categories"]),
        "layers": _changes(_layers(baseline), _layers(report)),
        "distributions": _changes({n: s for n, s, _ in baseline["python_distributions"]},
                                  {n: s for n, s, _ in report["python_distributions"]}),
        "os_packages": _changes({n: s for n, s, _ in baseline["os_package_sizes"]},
                                {n: s for n, s, _ in report["os_package_sizes"]}),
        "fixed": sorted(r for r in before_findings if r not in after_findings),
        "introduced": sorted(r for r in after_findings if r not in before_findings),
        "findings": [{"name": r, "before": before_findings.get(r, 0), "after": after_findings.get(r, 0)}
                     for r in sorted(set(before_findings) | set(after_findings))],
    }


def print_comparison(diff: dict, image: str) -> None:
    print(f"\n== {image} against {diff['baseline']}: {_signed(diff['total_change'])} "
          f"({diff['growth_pct']:+.1f} %) ==")
    for kind, title in (("categories", "by category"), ("layers", "by layer (instruction)"),
                        ("distributions", "by Python distribution"), ("os_packages", "by OS package")):
        rows = diff[kind]
        if not rows:
            continue
        print(f"\n{title}: {len(rows)} changed by 1 MB or more"
              + (" (largest 12)" if len(rows) > 12 else ""))
        print_table([KINDS[kind], "before", "after", "difference"],
                    [[r["name"][:80], human_bytes(r["before"]) if r["before"] else "(absent)",
                      human_bytes(r["after"]) if r["after"] else "(gone)", _signed(r["after"] - r["before"])]
                     for r in rows[:12]])
    print(f"\nfindings fixed: {', '.join(diff['fixed']) or 'none'}; "
          f"introduced: {', '.join(diff['introduced']) or 'none'}")
    print_table(["finding", "before", "after"],
                [[r["name"], human_bytes(r["before"]) if r["before"] else "-",
                  human_bytes(r["after"]) if r["after"] else "-"] for r in diff["findings"]])


def gate(report: dict, fail_above: int | None = None, diff: dict | None = None,
         max_growth_pct: float | None = None) -> list[str]:
    """Why this image fails the CI gate; empty when it passes."""
    reasons = []
    advice = report["advice"]
    if fail_above is not None and advice["addressable_bytes"] > fail_above:
        named = ", ".join(f"{f['rule']} {human_bytes(f['bytes'])}" for f in advice["findings"] if f["bytes"])
        reasons.append(f"{human_bytes(advice['addressable_bytes'])} addressable, above the "
                       f"{human_bytes(fail_above)} allowed: {named}")
    if diff is not None and max_growth_pct is not None and diff["growth_pct"] > max_growth_pct:
        grown = [f"{r['name']} {_signed(r['after'] - r['before'])}"
                 for r in diff["findings"] if r["after"] > r["before"]]
        reasons.append(f"{diff['growth_pct']:+.1f} % against {diff['baseline']}, above the {max_growth_pct:+.1f} % "
                       f"allowed; findings that grew or appeared: {', '.join(grown) or 'none'}")
    return reasons
