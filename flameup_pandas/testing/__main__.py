"""``python -m flameup_pandas.testing``: the same as ``flameup-pandas serve``."""

from __future__ import annotations

import sys

from ._serve import serve_main

if __name__ == "__main__":
    sys.exit(serve_main())
