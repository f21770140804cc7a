"""The report and the generated docs."""
