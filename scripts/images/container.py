"""A running service container, and what the measurements read from one.

Container runs an image the way every check here does (read-only root, /tmp a tmpfs, port 8000
published on the engine's address); http() and classify() talk to it; process_uids(),
container_memory() and has_shell() read what `docker top`, `docker stats` and a shell probe would.
make smoke, make compare, make load, make startup and the memory and request-phase studies use them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from docker.errors import DockerException, NotFound

from scripts.infra import registry
from scripts.infra.engine import EngineError, publish_address, sdk

POSITIVE = "I love this movie, the acting is wonderful and the story kept me hooked."
NEGATIVE = "A dull, lifeless mess that wastes its talented cast."


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
         timeout: float = 30) -> tuple[int, dict]:
    """(status, parsed JSON body) for a request; non-JSON bodies come back as {"raw": text}."""
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")[:200]}


def classify(base: str, text: str) -> tuple[int, dict]:
    return http("POST", f"{base}/classify", json.dumps({"text": text}).encode())


@dataclass
class Container:
    """A running container of an image, port 8000 published on 127.0.0.1 (random host port; engine.publish_address).

    Run, inspected, read and removed through the Docker SDK (engine.sdk): structured answers,
    no CLI text to parse. options are the SDK's containers.run keywords (network_mode, environment...).
    """

    image: str
    options: dict = field(default_factory=dict)
    host: str | None = None  # another engine (compare's empty engine); None: the usual one
    id: str = ""
    base_url: str = ""

    def _get(self):
        return sdk(self.host).containers.get(self.id)

    def start(self, publish: bool = True) -> Container:
        """Run detached; publish=False when options bring their own networking (base_url is then yours to set)."""
        ports = {"8000/tcp": (publish_address(), None)} if publish else {}
        try:
            options = {"read_only": True, "tmpfs": {"/tmp": ""}, **self.options}  # options may lift the first
            container = sdk(self.host).containers.run(self.image, detach=True, ports=ports, **options)
        except DockerException as exc:
            raise EngineError(f"docker run {self.image} failed: {exc}") from None
        self.id = container.id
        if publish:
            container.reload()
            self.base_url = f"http://{publish_address()}:{container.ports['8000/tcp'][0]['HostPort']}"
        return self

    def state(self) -> dict:
        try:
            return self._get().attrs["State"]
        except NotFound:
            return {}

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def logs(self, lines: int = 30) -> str:
        try:
            return self._get().logs(tail=lines).decode(errors="replace").strip()
        except NotFound:
            return "(container gone)"

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until /readyz answers 200; EngineError if it exits or times out."""
        return self.wait_answer(lambda: http("GET", f"{self.base_url}/readyz", timeout=2)[0] == 200,
                                time.perf_counter(), "/readyz", timeout)

    def wait_answer(self, answered, started: float, what: str, timeout: float = 180) -> float:
        """Seconds from started (a perf_counter reading) until answered() is true: the first answer after
        `docker run`. answered() may raise OSError while nothing listens; EngineError if it exits or times out."""
        while time.perf_counter() - started < timeout:
            try:
                if answered():
                    return time.perf_counter() - started
            except (OSError, urllib.error.URLError):
                pass
            if not self.running():
                raise EngineError(f"{self.image} exited during start-up:\n{self.logs()}")
            time.sleep(0.05)
        raise EngineError(f"{self.image}: no answer on {what} within {timeout:.0f}s:\n{self.logs()}")

    def stop(self, grace: int) -> None:
        """SIGTERM, then SIGKILL after grace seconds (`docker stop -t grace`)."""
        self._get().stop(timeout=grace)

    def remove(self) -> None:
        if self.id:
            try:
                self._get().remove(force=True)
            except NotFound:
                pass


def wait_first_classify(container: Container, started: float, timeout: float = 180) -> float:
    """Seconds from started (a perf_counter reading) to the container's first 200 from /classify."""
    return container.wait_answer(lambda: classify(container.base_url, "I love this movie")[0] == 200, started,
                                 "/classify", timeout)


def fresh_node(infra: registry.Infra, ref: str) -> tuple[float, float]:
    """(pull seconds, pull + run to first /classify seconds) on the empty engine; one run.

    The container uses the empty engine's own network namespace (--network host inside
    docker:dind), with gunicorn bound to the port that engine's container publishes on
    127.0.0.1; the image is removed afterwards, so the next variant pulls into an empty
    engine again.
    """
    started = time.perf_counter()
    pull_seconds = registry.pull(infra.scratch, ref)
    bind = {"GUNICORN_CMD_ARGS": f"--bind {infra.bind}"}
    container = Container(ref, {"network_mode": "host", "environment": bind}, host=infra.scratch).start(publish=False)
    container.base_url = infra.service_url
    try:
        return pull_seconds, wait_first_classify(container, started)
    finally:
        container.remove()
        registry.remove_all(infra.scratch)


def process_uids(container_id: str) -> set[int]:
    """User ids of every process in the container (`docker top`'s data, as the SDK returns it)."""
    top = sdk().containers.get(container_id).top(ps_args="-eo uid,pid")
    column = top["Titles"].index("UID")
    return {int(row[column]) for row in top["Processes"] if row[column].isdigit()}


def memory_in_use(stats: dict) -> int:
    """What `docker stats` shows as MEM USAGE: the cgroup's usage less its inactive page cache."""
    memory = stats["memory_stats"]
    usage, extra = memory["usage"], memory.get("stats", {})
    # cgroup v2 names it inactive_file, v1 total_inactive_file; the CLI subtracts whichever exists.
    inactive = extra.get("inactive_file", extra.get("total_inactive_file", 0))
    return usage - inactive if inactive < usage else usage


def container_memory(container_id: str) -> int:
    """The container's memory use as `docker stats` reports it (cgroup, page cache excluded)."""
    return memory_in_use(sdk().containers.get(container_id).stats(stream=False))


def has_shell(image: str) -> bool:
    """Does /bin/sh start in the image? (The container is removed either way.)"""
    container = sdk().containers.create(image, ["-c", "exit 0"], entrypoint="/bin/sh")
    try:
        container.start()
        return container.wait(timeout=60)["StatusCode"] == 0
    except DockerException:  # no /bin/sh to start
        return False
    finally:
        container.remove(force=True)
