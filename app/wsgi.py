"""WSGI entry point for gunicorn: `gunicorn -c app/gunicorn.conf.py app.wsgi:app`.

The model loads here, at import; with preload_app the master imports this
once and forked workers share the weights.
"""

from __future__ import annotations

import logging

from app.server import create_app
from app.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = Settings.from_env()
model = settings.load_model()
logging.getLogger("app").info("model %s loaded (%s backend) on %s in %.2fs", model.name,
                              model.describe()["backend"], model.device, model.load_seconds)
app = create_app(model, settings)
