"""Named moments where a test may kill a real apply (``LLMSPEC_TEST_KILL_AT=point``).

Crash safety is proven on the real code path, not on a model of it: the process SIGKILLs
itself at the named point, exactly as `kill -9` or a power cut would stop it.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "LLMSPEC_TEST_KILL_AT"


def crash_point(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
