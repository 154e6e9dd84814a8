"""Configuration: YAML in, a frozen Config out; strict keys, file:line errors."""
