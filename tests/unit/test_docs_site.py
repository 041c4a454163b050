"""The docs as a site: README.md stays a quick start, and every relative link in it and in
docs/ leads to a file and, with an anchor, to a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PROJECT

README = PROJECT / "README.md"
PAGES = sorted((PROJECT / "docs").glob("*.md"))
BENCHMARKS = PROJECT / "benchmarks" / "README.md"
README_LIMIT = 12_000  # bytes: "at most 12 KB" in either unit

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # link text may wrap
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without code blocks and code spans (a `[x](y)` there is no link)."""
    return _CODE.sub("", _FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens; a
    repeated heading gets -1, -2, …"""
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(f"{page.name}: {target} (no such file)")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            problems.append(f"{page.name}: {target} (no such heading)")
    return problems


def test_the_readme_is_a_quick_start_of_at_most_12_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes: move reference text to docs/"


@pytest.mark.parametrize(
    "page", [README, BENCHMARKS, *PAGES], ids=lambda p: p.parent.name + "/" + p.name
)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Off-site copies (S3, GCS)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#off-site-copies-s3-gcs) [ok](#page) [ok](https://x.org/a)\n"
        "`[code](nowhere.md)`\n\n```\n[code](nowhere.md)\n```\n"
        "[gone](nowhere.md) [bad anchor](other.md#run-it-in-production) [self](#nope)\n"
        "a [link text that\nwraps](gone.md)\n"
    )
    assert broken_links(page) == [
        "page.md: nowhere.md (no such file)",
        "page.md: other.md#run-it-in-production (no such heading)",
        "page.md: #nope (no such heading)",
        "page.md: gone.md (no such file)",
    ]


def test_the_index_and_the_readme_link_every_docs_page() -> None:
    index = (PROJECT / "docs" / "index.md").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    for page in PAGES:
        if page.name != "index.md":
            assert f"]({page.name}" in index, f"docs/index.md does not link {page.name}"
        assert f"](docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_no_cross_reference_by_quoted_section_title(page: Path) -> None:
    """`see "Run it in production"` broke when the README was split: link the page instead."""
    quoted = re.findall(r"\b[Ss]ee \"[^\"]+\"", _prose(page.read_text(encoding="utf-8")))
    assert quoted == []


def test_the_readme_draws_the_layers_and_they_exist() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## How the code is layered") :]
    (diagram,) = re.findall(r"```text\n(.*?)```", section, re.S)[:1]
    layers = (
        "dagvault_cli/",
        "dagvault_api/",
        "flows/launcher.py",
        "flows/",
        "tasks/",
        "dagvault/",
    )
    lines = diagram.splitlines()

    def row(name: str) -> int:
        """The diagram's line that names ``name`` as a word of its own."""
        pattern = re.compile(rf"(^|\s){re.escape(name)}(\s|$)")
        return next(i for i, line in enumerate(lines) if pattern.search(line))

    rows = [row(layer) for layer in layers]
    assert rows == sorted(rows), "the diagram draws the shells on top, the core at the bottom"
    for name in (*layers, "deployments/", "notebooks/"):
        row(name)
        if name.endswith("/"):
            assert (PROJECT / name).is_dir(), name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_opens_with_a_paragraph(page: Path) -> None:
    """A page read on its own says first what it covers: after the title comes prose, not a
    table, a list, code or a subheading."""
    text = re.sub(r"<!--.*?-->", "", page.read_text(encoding="utf-8"), flags=re.S)
    title, *blocks = [block.strip() for block in text.split("\n\n") if block.strip()]
    assert title.startswith("# ") and "\n" not in title
    assert not re.match(r"(#|\||[-*] |\d+\. |```|~~~)", blocks[0]), blocks[0][:80]
