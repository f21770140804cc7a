"""Image-advisor with this repository's knowledge."""
