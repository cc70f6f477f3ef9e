import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

df = pd.DataFrame({"userId": ["u1", "u2"], "email": ["ada@example.com", "grace@example.com"]})
result = df.flameup.upsert(progress=False)  # key and URL from FLAMEUP_API_KEY/_BASE_URL
print(result[["userId", "flameup_status"]])
#   userId flameup_status
# 0     u1        created
# 1     u2        created

# The change guard: plan first, send nothing if more than 5% of the people would change.
result = df.flameup.upsert(state="people.state.parquet", max_changes="5%", progress=False)
