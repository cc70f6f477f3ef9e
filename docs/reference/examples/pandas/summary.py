import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

df = pd.DataFrame({"userId": ["u1", "u2", None]})
result = df.flameup.upsert(progress=False)
summary = result.flameup.summary()  # a table in a notebook
print(summary.to_dict()["created"], summary.to_dict()["invalid"])  # plain data for logs
# 2 1
