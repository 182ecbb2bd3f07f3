"""The installed llmspec version: recorded in every artifact llmspec writes (stage records,
state, plans), so a file can say which version wrote it. Stdlib only (validate imports it)."""

from __future__ import annotations

# The name on the package index ("llmspec" there is an unrelated project).
DISTRIBUTION = "llmspec-tune"


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


LLMSPEC_VERSION = _installed_version()
