"""Which llmspec this is: the name on the package index and the installed version.

Files llmspec writes record the version that wrote them (runtime/engine/artifacts.py), so a
file from a newer llmspec is refused with a message naming both versions.
"""

from __future__ import annotations

from functools import lru_cache

# The name on the package index: "llmspec" there is an unrelated project. Kept equal to
# pyproject.toml's [project] name (tests/test_init.py checks), since `llmspec init` writes it
# into the CI workflow it generates.
DISTRIBUTION = "llmspec-tune"


@lru_cache(maxsize=1)
def llmspec_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
