"""Where the gateway keeps its files: `$DRAGOMAN_DATA_DIR`, else the user data directory."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The directory for the default SQLite ledger and the usage journal (created on first use)."""
    env = os.environ.get("DRAGOMAN_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("dragoman"))
