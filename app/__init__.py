"""BERT text-classifier service: one app, packaged five ways."""
