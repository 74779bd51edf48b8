"""The spec language: loading YAML, validating it and expanding it into graphs."""
