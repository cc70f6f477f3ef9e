import tempfile
from pathlib import Path

import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

state = Path(tempfile.mkdtemp()) / "people.state.parquet"
df = pd.DataFrame({"userId": ["u1", "u2"], "plan": ["free", "pro"]})
df.flameup.upsert(state=state, progress=False)  # key and URL from FLAMEUP_API_KEY/_BASE_URL

df.loc[0, "plan"] = "pro"
planned = df.flameup.plan(state=state)  # reads the state, sends nothing
print(planned[["userId", "flameup_action", "flameup_changes"]])
#   userId flameup_action flameup_changes
# 0     u1         update          [plan]
# 1     u2      unchanged            None
print(planned.flameup.summary())
