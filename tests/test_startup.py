"""make startup's phases, split from the engine's timestamps and the service's own log lines."""

from __future__ import annotations

import pytest

from scripts.bench.startup import PHASES, phases, stamp
from scripts.infra.engine import EngineError

LOG = """\
2026-12-02T15:05:20.129867255Z 2026-12-02 15:05:20,128 INFO app: model m loaded (torch backend) on cpu in 1.65s
2026-12-02T15:05:20.131990269Z [2026-12-02 15:05:20 +0000] [1] [INFO] Starting gunicorn 27.0.1
2026-12-02T15:05:20.134014139Z [2026-12-02 15:05:20 +0000] [1] [INFO] Listening at: http://0.0.0.0:8000 (1)
2026-12-02T15:05:20.146749750Z [2026-12-02 15:05:20 +0000] [11] [INFO] Booting worker with pid: 11
2026-12-02T15:05:20.240702753Z [2026-12-02 15:05:20 +0000] [11] [INFO] ASGI server listening on http://0.0.0.0:8000
"""


def test_phases_add_up_to_the_whole_start():
    started = stamp("2026-12-02T15:05:15.810467517Z")
    run_at, answered = started - 0.5, stamp("2026-12-02T15:05:20.300000000Z")
    p = phases(run_at, started, LOG, answered)
    assert list(p) == list(PHASES)
    assert p["engine: create and start"] == pytest.approx(0.5)
    assert p["model load"] == pytest.approx(1.65)
    assert p["interpreter and imports"] == pytest.approx(20.129867 - 15.810468 - 1.65, abs=1e-5)
    assert p["gunicorn arbiter"] == pytest.approx(20.146750 - 20.129867, abs=1e-5)  # "Booting worker", not the
    assert p["worker fork and warm-up"] == pytest.approx(20.240703 - 20.146750, abs=1e-5)  # arbiter's "Listening"
    assert sum(p.values()) == pytest.approx(answered - run_at)


def test_a_log_without_the_lines_is_a_clear_error():
    with pytest.raises(EngineError, match="lacks the lines"):
        phases(0.0, 0.0, LOG.splitlines()[0], 1.0)
