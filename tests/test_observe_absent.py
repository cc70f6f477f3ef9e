"""Without the [otel] and [openlineage] extras a run works as before: the observers are off.

The packages are hidden from a child interpreter (``sys.modules[name] = None`` makes importing
them fail as if they were not installed), which is how a plain ``pip install flameup-pandas``
runs; the suite itself has them installed.
"""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
for name in ("opentelemetry", "openlineage"):
    sys.modules[name] = None
import pandas as pd
import flameup_pandas
from flameup_pandas.testing import FlameupServer

with FlameupServer() as server:
    df = pd.DataFrame({"userId": ["a", "b"], "email": ["a@example.com", "b@example.com"]})
    result = df.flameup.upsert(api_key=server.api_key, base_url=server.base_url)
    print(sorted(result["flameup_status"]))
"""


def test_a_run_works_without_the_observer_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['created', 'created']"
