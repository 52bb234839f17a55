"""Print the digest of what the lock files are compiled from (the project's dependencies, its
extras and its build requirements in pyproject.toml). scripts/lock.sh writes it into each lock;
scripts/install.sh compares it, so a dependency added without re-locking fails at once with the
command that fixes it instead of as an ImportError somewhere in the tests."""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path


def inputs(pyproject: Path) -> dict[str, object]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            name: sorted(reqs) for name, reqs in project.get("optional-dependencies", {}).items()
        },
        "build-system": sorted(data.get("build-system", {}).get("requires", [])),
    }


def digest(pyproject: Path) -> str:
    canonical = json.dumps(inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    if sys.argv[1:] == ["build-requires"]:
        print("\n".join(inputs(root / "pyproject.toml")["build-system"]))  # type: ignore[arg-type]
    else:
        print(digest(root / "pyproject.toml"))
