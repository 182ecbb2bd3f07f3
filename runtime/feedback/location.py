"""Where a project's feedback store is: the SQLite file in the state folder, or the PostgreSQL
URL held by the environment variable a spec names as ``${env:NAME}``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from llmspec.spec.errors import DataError, Diagnostic

from .store import STORE_FILE

_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")


def store_target(base_dir: Path, store: str | None, env: Mapping[str, str] | None = None) -> str:
    """The path or URL to open for the store a spec names (``None``: the project's SQLite file)."""
    if not store:
        return str(Path(base_dir) / ".llmspec" / STORE_FILE)
    found = _ENV_REF.match(store.strip())
    if not found:
        raise DataError(Diagnostic("literal-secret", "a feedback store URL must be given as ${env:NAME}"))
    value = (os.environ if env is None else env).get(found.group(1))
    if not value:
        raise DataError(Diagnostic("missing-env", f"environment variable {found.group(1)} is not set (it holds the "
                                   "feedback store's URL)", hint=f"export {found.group(1)}=postgresql://..."))
    return value
