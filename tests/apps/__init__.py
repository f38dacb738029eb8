"""CDK apps used by the tests (and linted by the end-to-end checks)."""
