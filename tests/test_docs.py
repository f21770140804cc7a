"""The docs: figures generated from results files are current, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.reports import docs
from scripts.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def doc_files() -> list[Path]:
    found = {ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md"), *ROOT.glob("peers/*/README.md")}
    return sorted(p for p in found if not p.relative_to(ROOT).parts[0].startswith("."))  # not .pytest_cache


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def broken_links(path: Path) -> list[str]:
    problems = []
    for m in LINK.finditer(FENCE.sub("", path.read_text())):
        target = m.group(1) or m.group(2)
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    return problems


def test_every_link_resolves():
    assert [p for f in doc_files() for p in broken_links(f)] == []


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad anchor](#nope)\n")
    monkeypatch.setattr("tests.test_docs.ROOT", tmp_path)
    assert broken_links(page) == ["page.md: missing.md (no such file)", "page.md: #nope (no such heading)"]


def test_generated_figures_are_current():
    assert docs.stale() == []


@pytest.mark.parametrize("block", ["memory", "figures-slim_image", "compare-summary", "composition",
                                   "engines-build-ratio", "advisor-speed", "advisor-image"])
def test_an_edited_figure_is_stale(tmp_path, monkeypatch, block):
    page = tmp_path / "README.md"
    current = docs.rendered(f"<!-- begin {block} -->\n<!-- end {block} -->")
    edited = re.sub(r"\d", lambda m: str((int(m.group(0)) + 1) % 10), current, count=1)  # one digit changed
    assert edited != current
    page.write_text(edited)
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    assert docs.stale((page,)) == [f"README.md: block {block!r}"]


def test_every_variant_has_a_generated_readme():
    for variant in VARIANTS:
        text = (variant.dockerfile.parent / "README.md").read_text()
        assert f"<!-- begin figures-{variant.name} -->" in text
        assert variant.previous == "" or f"<!-- begin diff-{variant.name} -->" in text


def test_an_edited_inline_figure_is_stale(tmp_path, monkeypatch):
    page = tmp_path / "README.md"
    current = docs.rendered("naive is <!-- fig compare.json variants.naive_image.size_bytes bytes --><!-- /fig -->.")
    assert re.search(r"\d", current)
    page.write_text(current)
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    assert docs.stale((page,)) == []
    page.write_text(re.sub(r"\d", lambda m: str((int(m.group(0)) + 1) % 10), current, count=1))
    [problem] = docs.stale((page,))
    assert problem.startswith("README.md: figure compare.json variants.naive_image.size_bytes")


def test_a_figure_that_is_not_in_the_results_is_an_error():
    with pytest.raises(SystemExit, match="has no variants.nowhere"):
        docs.figure("compare.json", "variants.nowhere.size_bytes", "bytes")


def test_rule_table_credits_the_folders_the_findings_do():
    """docs/diagnose.md's rule table names, per row, the folders make diagnose's profile credits (SHOWN_IN)."""
    from scripts.advisor.profile import SHOWN_IN

    table = [line for line in (ROOT / "docs" / "diagnose.md").read_text().splitlines()
             if line.startswith("| `") and line.split("|")[3].strip() in {"certain", "likely", "estimate", "surface"}]
    assert len(table) >= 15
    folders = {*SHOWN_IN.values()}
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        rules = re.findall(r"`([a-z-]+)`", cells[0])
        linked = {name for name in re.findall(r"\[([\w.]+)\]\(", cells[-1]) if name in folders}
        credited = {shown for key, shown in SHOWN_IN.items() if key.split("/")[0] in rules}
        assert linked == credited, f"{rules}: the table says {sorted(linked)}, the findings {sorted(credited)}"


def test_the_readme_is_read_in_minutes_and_links_every_doc():
    """At most 200 lines, and every page of docs/ reachable from it."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for page in sorted(ROOT.glob("docs/*.md")):
        assert f"](docs/{page.name}" in text, page.name
