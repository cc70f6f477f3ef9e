import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

result = pl.DataFrame({"userId": ["u1", "u2"]}).flameup.upsert(progress=False)
print(result.flameup.summary().to_dict()["created"])
# 2
