import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

df = pd.DataFrame({"userId": ["u1", "u2"], "email": ["ada@example.com", "not-an-email"]})
report = df.flameup.validate()  # one row per problem; empty when every row can be sent
print(report[["index", "column", "check"]])
#    index column            check
# 0      1  email  email_plausible
