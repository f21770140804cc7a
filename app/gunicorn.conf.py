"""gunicorn settings for the classifier; every value can be overridden from the environment."""

import gc
import os

from app.gunicorn_errors import install as json_errors_from_gunicorn
from app.settings import ensure_writable_tempdir

json_errors_from_gunicorn()  # gunicorn's own 400/414/431 answers as JSON, like the app's

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# One process per model copy: a CPU model is compute-bound, so few workers.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# asyncio worker: connections cost no thread while clients send (app/asgi.py buffers each request
# and runs the Flask app in APP_THREADS threads), so slow or idle clients cannot starve the service.
worker_class = "asgi"
wsgi_app = "app.asgi:app"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
# Load the weights once in the master; workers fork with them already in memory.
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM, in-flight requests get this long to finish before workers are killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "8"))
# No runtime control socket: it wants a writable $HOME, which non-root, read-only images lack.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Heartbeat files and upload spooling need a writable dir; /dev/shm is one even on a read-only root.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"
ensure_writable_tempdir()


def post_worker_init(worker):
    # Warm up in each worker (not the master: torch's OpenMP pool and ONNX Runtime's thread
    # pool do not survive fork; the ONNX backend creates its session here), so the first
    # real request is not the slow one.
    worker.asgi.wsgi_app.extensions["model"].predict(["warm up"])


def pre_fork(server, worker):
    # Objects the master made (the app, the tokenizer) out of the worker's garbage collector: its passes
    # would write to every one of them and copy the pages the master shares with the worker.
    gc.freeze()
