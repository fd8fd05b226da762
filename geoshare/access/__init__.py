"""Who is asking: departments, users, API keys, sharing agreements, and the policy they yield."""
