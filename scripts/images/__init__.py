"""Build, smoke-test, lint and clean the six images."""
