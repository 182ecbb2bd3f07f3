"""llmspec: declarative fine-tuning. The command and the import package are `llmspec`."""

# The name on the package index: "llmspec" there is an unrelated project. Kept equal to
# pyproject.toml's [project] name (tests/test_init.py checks), since `llmspec init` writes it
# into the CI workflow it generates.
DISTRIBUTION = "llmspec-tune"


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


# Recorded in every artifact llmspec writes (stage records, state, plans), so a file can say
# which version wrote it.
__version__ = _installed_version()
