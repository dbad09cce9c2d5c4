"""Refresh newsletter/checks/caniemail.json, the dated copy of the caniemail.com support
data (MIT licence, Rémi Parmentier and contributors) that `newsletter check` reads.

From a checkout of the caniemail repository (its _features/*.md front matter):

    .venv/bin/python scripts/refresh_caniemail.py path/to/caniemail

Each feature keeps its title, category and, per client family and platform, the support
of the most recent version tested: y (yes), a (partial), n (no) or u (unknown), with the
number of the note that qualifies it, and the notes themselves.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "newsletter" / "checks" / "caniemail.json"


def front_matter(text: str) -> dict[str, object]:
    match = re.match(r"---\n(.*?)\n---", text, re.S)
    if not match:
        return {}
    data = yaml.safe_load(match.group(1).replace("\t", "    "))
    return data if isinstance(data, dict) else {}


def latest(versions: dict[str, str]) -> str:
    """The support of the most recent version tested (the last one listed)."""
    return str(list(versions.values())[-1]) if versions else "u"


def main() -> None:
    checkout = Path(sys.argv[1])
    features = {}
    for path in sorted((checkout / "_features").glob("*.md")):
        if path.stem.startswith("_"):
            continue
        data = front_matter(path.read_text(encoding="utf-8"))
        stats = data.get("stats") or {}
        support = {}
        for family, platforms in stats.items() if isinstance(stats, dict) else []:
            for platform, versions in (platforms or {}).items():
                if isinstance(versions, dict):
                    support[f"{family}/{platform}"] = latest(versions)
        features[path.stem] = {
            "title": str(data.get("title", path.stem)),
            "category": str(data.get("category", "")),
            "support": support,
            "notes": {str(k): str(v) for k, v in (data.get("notes_by_num") or {}).items()},
        }
    log = subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%H %cs"],
        capture_output=True,
        text=True,
    ).stdout.split()
    document = {
        "source": "caniemail.com data, MIT licence, (c) Rémi Parmentier and contributors",
        "commit": log[0] if log else "",
        "date": log[1] if len(log) > 1 else "",
        "features": features,
    }
    OUT.write_text(json.dumps(document, ensure_ascii=False, indent=0, sort_keys=True) + "\n")
    print(f"{OUT}: {len(features)} features, data of {document['date']}")


if __name__ == "__main__":
    main()
