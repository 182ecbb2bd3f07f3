"""llmspec: declarative fine-tuning. The command and the import package are `llmspec`."""

# The name on the package index: "llmspec" there is an unrelated project. Kept equal to
# pyproject.toml's [project] name (tests/test_init.py checks), since `llmspec init` writes it
# into the CI workflow it generates.
DISTRIBUTION = "llmspec-tune"
