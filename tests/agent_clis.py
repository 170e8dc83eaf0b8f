"""The real coding-agent CLIs for the launcher tests: installed with npm (from the npm registry only)
into a cache directory on first use, and reused while the pinned versions are there.

`DRAGOMAN_TEST_NPM` moves the cache (default ~/.cache/dragoman-tests/npm). A lock file keeps two
test runs on one machine from installing at once."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

# pinned: the launcher tests assert what these versions send
PACKAGES = {"claude": ("@anthropic-ai/claude-code", "2.1.197"), "codex": ("@openai/codex", "0.171.0")}


def cache_dir() -> Path:
    return Path(os.environ.get("DRAGOMAN_TEST_NPM") or Path.home() / ".cache" / "dragoman-tests" / "npm")


def bin_dir() -> Path:
    """The folder holding `claude` and `codex`, installing them first when they are missing."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [f"{pkg}@{version}" for pkg, version in PACKAGES.values() if _version(root, pkg) != version]
        if missing:
            npm = shutil.which("npm")
            assert npm is not None, "the launcher tests need npm (Node.js) to install the agent CLIs"
            subprocess.run(
                [npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *missing],
                check=True,
                timeout=900,
            )
    for name in PACKAGES:
        assert (root / "node_modules" / ".bin" / name).exists(), f"npm installed no `{name}` in {root}"
    return root / "node_modules" / ".bin"


def _version(root: Path, package: str) -> str | None:
    try:
        return str(json.loads((root / "node_modules" / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None
