"""Every document the README, the package, the scripts and the presets point to is in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"docs/[A-Za-z0-9_./-]+\.(?:md|png|json)")


def test_every_cited_document_exists():
    sources = [ROOT / "README.md", *[p for d in ("uni3d", "scripts", "configs") for p in (ROOT / d).rglob("*")
                                     if p.suffix in (".py", ".yaml", ".md")]]
    cited = {m: src for src in sources for m in CITED.findall(src.read_text())}
    assert cited, "no document cited: the pattern is wrong"
    missing = {doc: str(src.relative_to(ROOT)) for doc, src in cited.items() if not (ROOT / doc).exists()}
    assert not missing, f"cited but not in the repository: {missing}"
