"""The rich Console every command prints through.

On a terminal rich fits tables to its width. In a pipe (a CI log, `| tee`) there is no width
to fit and rich assumes 80 columns, folding every table's last column into a ragged column of
fragments; CI logs show long lines fine, so a pipe gets PIPE_WIDTH unless COLUMNS says otherwise.
"""

from __future__ import annotations

import os

PIPE_WIDTH = 200


def make_console(**kwargs):
    from rich.console import Console

    console = Console(**kwargs)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console
