"""``python -m tidaldb`` and the ``tidaldb`` command: run the bundled ``tidaldb`` binary
(``serve``, ``cert``, ``inspect``, ``verify``, ``export``; see ``tidaldb --help``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def binary() -> Path:
    """The path of the ``tidaldb`` server binary installed with this package."""
    path = Path(__file__).with_name("_bin") / "tidaldb"
    if not path.is_file():
        raise FileNotFoundError(
            f"the tidaldb binary is missing from {path.parent}; reinstall the package "
            "(from source: `make ext` builds and places it)"
        )
    return path


def main() -> None:
    """Replaces this process with the binary, so signals reach it directly."""
    try:
        path = binary()
    except FileNotFoundError as e:
        print(f"tidaldb: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    os.execv(path, [str(path), *sys.argv[1:]])


if __name__ == "__main__":
    main()
