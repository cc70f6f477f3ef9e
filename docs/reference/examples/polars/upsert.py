import polars as pl

import flameup_pandas  # noqa: F401  (registers df.flameup on polars frames too)

df = pl.DataFrame({"userId": ["u1", "u2"], "plan": ["pro", "free"]})
result = df.flameup.upsert(progress=False)  # key and URL from FLAMEUP_API_KEY/_BASE_URL
print(result.select("userId", "flameup_status"))
