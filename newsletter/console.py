"""The `newsletter` console script: the CLI, with the garbage collector tuned for a
command that loads some 300 modules and then ends.

Importing allocates hundreds of thousands of objects that live until exit; at the default
thresholds the collector walks them over and over while they load (about 30 ms of a
`newsletter build`), and once more at exit (about 50 ms). A larger first threshold
keeps collections rare but regular, so long-running commands (serve, preview, a large
send) still collect cycles; freezing what exists when the command ends moves it out of
the final collection. Exit is normal: atexit handlers run, files close, coverage is
written. bench/render.py measures the whole process against the mjml CLI.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    gc.set_threshold(100_000, 20, 100)
    from newsletter.cli import app

    try:
        app()
    except SystemExit as done:
        gc.freeze()
        sys.exit(done.code)
    gc.freeze()
