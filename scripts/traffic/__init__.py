"""Request generators shared by smoke tests and measurements: latency and hostile clients."""
