"""One load level driven by wrk (Debian's `wrk`), an HTTP client in C: an independent check of the
figures the Python client of scripts/bench/load.py reports, and one that does not share the
2 cores' interpreter time with the clients' own JSON and sockets.

The request mix is drawn per request by a Lua script; its done() hook prints one JSON line
(requests, errors, percentiles), so nothing of wrk's human-readable report is parsed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = r"""
local bodies, weights, total = {}, {}, 0
%(bodies)s
local function pick()
  local r = math.random() * total
  for i = 1, #bodies do
    r = r - weights[i]
    if r <= 0 then return bodies[i] end
  end
  return bodies[#bodies]
end
request = function()
  return wrk.format("POST", %(path)s, {["Content-Type"] = "application/json"}, pick())
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


class WrkMissing(Exception):
    pass


def lua_script(bodies: list[tuple[bytes, float]], path: str = "/classify") -> str:
    """The Lua script for (body, weight) pairs: each request's body drawn by weight."""
    lines = []
    for i, (body, weight) in enumerate(bodies, 1):
        lines.append(f"bodies[{i}] = {json.dumps(body.decode())}\nweights[{i}] = {weight}\ntotal = total + {weight}")
    return SCRIPT % {"bodies": "\n".join(lines), "path": json.dumps(path)}


def run(host: str, port: int, concurrency: int, duration: float, bodies: list[tuple[bytes, float]],
        path: str = "/classify") -> dict:
    """wrk (one thread: enough for 2 cores) with `concurrency` connections for `duration` seconds; the
    summary load.py's levels carry. Non-2xx answers are counted from wrk's own report line."""
    if shutil.which("wrk") is None:
        raise WrkMissing("wrk is not installed (Debian: apt-get install wrk); use --client python")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "mix.lua"
        script.write_text(lua_script(bodies, path))
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "60s",
                              "-s", str(script), f"http://{host}:{port}"],
                             capture_output=True, text=True, timeout=duration + 120)
    summary = parse(out.stdout)
    seconds = summary["duration_us"] / 1e6
    errors = summary["socket_errors"] + non_2xx(out.stdout)
    return {"concurrency": concurrency, "requests": summary["requests"], "errors": errors,
            "error_kinds": {"wrk": errors} if errors else {}, "seconds": round(seconds, 1),
            "throughput_rps": round(summary["requests"] / seconds, 1) if seconds else 0,
            "p50_ms": round(summary["p50_us"] / 1000, 1), "p95_ms": round(summary["p95_us"] / 1000, 1),
            "p99_ms": round(summary["p99_us"] / 1000, 1), "client": "wrk"}


def parse(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"wrk printed no summary:\n{stdout[-500:]}")


def non_2xx(stdout: str) -> int:
    """wrk's own count of answers that were not 2xx or 3xx ('Non-2xx or 3xx responses: N')."""
    for line in stdout.splitlines():
        if line.strip().startswith("Non-2xx or 3xx responses:"):
            return int(line.split(":")[1])
    return 0
