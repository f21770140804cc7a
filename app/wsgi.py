"""The Flask app with its model loaded: the WSGI app that app/asgi.py serves.

The model loads here, at import; with preload_app the gunicorn master imports this
once and forked workers share the weights. Any WSGI server can also serve
`app.wsgi:app` directly (without app/asgi.py's protection against slow clients).
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
