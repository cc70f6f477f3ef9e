import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)

df = pd.DataFrame({"customer_no": ["c1"], "email": ["ada@example.com"], "tier": ["pro"]})
people = df.flameup.to_people(mapping={"userId": "customer_no", "traits.plan": "tier"})
print(people)
# [{'userId': 'c1', 'email': 'ada@example.com', 'traits': {'plan': 'pro'}}]
