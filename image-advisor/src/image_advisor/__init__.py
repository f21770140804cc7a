"""image-advisor: where an image's bytes are, and which Dockerfile changes remove how many of them."""

__version__ = "0.1.0"
REPORT_SCHEMA = 1  # the JSON report's "schema" field: raised when a field changes meaning or goes
