"""llmspec: declarative fine-tuning. The command and the import package are `llmspec`."""

from llmspec.spec.version import DISTRIBUTION

__all__ = ["DISTRIBUTION"]
