"""Pure rules: diagnosis, signatures, trends, state, incidents, maintenance, alert routing."""
