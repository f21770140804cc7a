"""The Docker engine, through the Docker SDK: save an image, run the trace's container.

The engine is the one DOCKER_HOST names, else the docker CLI's current context (Docker
Desktop's socket in the user's home on macOS), else the SDK's default socket. An image
given as a file never needs one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from image_advisor import http_body
from image_advisor.errors import AdvisorError
from image_advisor.http_body import BodyError

LABEL = "org.image-advisor.trace"  # on every container the tool starts, so leftovers of a hard kill can be found


def sdk():
    """A Docker SDK client for the engine; AdvisorError when the SDK is missing or no engine answers."""
    return _sdk(os.environ.get("DOCKER_HOST") or _context_endpoint())


@functools.cache
def _sdk(base_url: str | None):
    try:
        import docker as docker_sdk
    except ImportError:
        raise AdvisorError("reading an image from the engine needs the Docker SDK (pip install docker); "
                           "a `docker save` archive or an OCI layout needs none") from None
    try:
        client = (docker_sdk.DockerClient(base_url=base_url, version="auto", timeout=600) if base_url
                  else docker_sdk.from_env(version="auto", timeout=600))
        client.ping()
        return client
    except docker_sdk.errors.DockerException as exc:
        raise AdvisorError(f"no Docker engine answers at {base_url or 'the default socket'} ({exc}); "
                           "start one, set DOCKER_HOST, or give the image as a `docker save` archive") from None


@functools.cache
def _context_endpoint() -> str | None:
    """The docker CLI's current context endpoint, when there is no default socket."""
    if Path("/var/run/docker.sock").exists() or not shutil.which("docker"):
        return None
    try:
        out = subprocess.run(["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
                             capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out or None


def engine_answers() -> bool:
    try:
        sdk()
    except AdvisorError:
        return False
    return True


def publish_address() -> str:
    """Where a container publishes its port and this machine reaches it: 127.0.0.1 unless
    IMAGE_ADVISOR_ADDRESS says otherwise (an engine running in a container of another engine)."""
    return os.environ.get("IMAGE_ADVISOR_ADDRESS") or "127.0.0.1"


def image_id(image: str) -> str | None:
    """The image's id in the engine, or None when the engine does not hold it."""
    from docker.errors import ImageNotFound

    try:
        return sdk().images.get(image).id
    except ImageNotFound:
        return None


CHUNK = http_body.BLOCK  # what the SDK hands on at a time, as the socket's reader does
READ_AHEAD = 32 << 20  # bytes received ahead of the parser: the engine keeps saving while a layer is parsed


def save_chunks(image: str, tee: Path | None = None) -> Iterator[bytes]:
    """`docker save` of the image as a stream of chunks, received by a thread of its own up to READ_AHEAD bytes
    ahead of the consumer; a copy written to tee where one is given (for dive). An image the engine lacks is
    an AdvisorError now, before anything is read."""
    from docker.errors import ImageNotFound

    try:
        found = sdk().images.get(image)
    except ImageNotFound:
        raise AdvisorError(f"no image {image!r} in this engine (build or pull it first, or give a file)") from None
    return _received(found, image, tee)


def _received(found, image: str, tee: Path | None) -> Iterator[bytes]:
    from docker.errors import DockerException

    received: queue.Queue = queue.Queue(maxsize=READ_AHEAD // CHUNK)  # each item at most CHUNK bytes
    stop = threading.Event()

    def receive() -> None:
        try:
            with tee.open("wb") if tee else contextlib.nullcontext() as out:
                for views in _saved_blocks(found, image):
                    if out is not None:
                        out.writelines(views)
                    while not stop.is_set():
                        try:
                            received.put(views, timeout=1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            received.put(None)
        except (DockerException, OSError, BodyError) as exc:
            received.put(AdvisorError(f"docker save {image} failed: {exc}"))

    threading.Thread(target=receive, name="docker-save", daemon=True).start()
    try:
        while (item := received.get()) is not None:
            if isinstance(item, AdvisorError):
                raise item
            yield from item
    finally:
        stop.set()  # a consumer that stops early (an error) lets the thread end


def _plain_endpoint() -> str | None:
    """The engine's endpoint where it is reached without TLS or ssh (a unix socket, plain tcp), else None."""
    if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
        return None
    endpoint = os.environ.get("DOCKER_HOST") or _context_endpoint() or "unix:///var/run/docker.sock"
    return endpoint if endpoint.startswith(("unix://", "tcp://")) else None


_STARTED: dict[str, socket.socket] = {}  # image -> a `docker save` asked of a plain engine, its answer not read


def start_save(image: str) -> None:
    """Ask a plain engine for `docker save image` now, so that it exports the layers while the analysis
    loads (save_chunks reads the answer); nothing where the engine is reached another way or not at all."""
    endpoint = _plain_endpoint()
    # Only a name with a tag or digest means one image to the save as it does to the SDK: a bare repository
    # would save every tag it has, and a bare id prefix is no repository; save_chunks asks for those itself.
    if not endpoint or image in _STARTED or not (":" in image.rsplit("/", 1)[-1] or "@" in image):
        return
    name = image
    try:
        sock = http_body.connect(endpoint, timeout=600)
    except (OSError, ValueError):
        return
    try:
        http_body.send(sock, http_body.save_path("", name))
    except OSError:
        sock.close()
        return
    _STARTED[image] = sock


def drop_started() -> None:
    """Close what start_save asked for and nothing read (an error came first): the engine stops its save."""
    while _STARTED:
        _STARTED.popitem()[1].close()


def _saved_blocks(found, image: str) -> Iterator[list]:
    """`docker save` of the SDK's image `found` (by its first tag, as the SDK's save names it), as lists of
    byte chunks: read off the engine's socket where it is plain (http_body.py), else through the SDK; the
    answer to start_save(image) where that asked already."""
    started = _STARTED.pop(image, None)
    if started is not None:
        yield from http_body.body(started)
        return
    endpoint = _plain_endpoint()
    try:
        sock = http_body.connect(endpoint, timeout=600) if endpoint else None
    except OSError:
        sock = None  # the SDK connected some other way: let it read
    if sock is None:
        for chunk in found.save(chunk_size=CHUNK, named=True):
            yield [chunk]
        return
    name = found.tags[0] if found.tags else found.id
    yield from http_body.get(sock, http_body.save_path(found.client.api.api_version, name))


@contextlib.contextmanager
def saved_image(image: str) -> Iterator[Path]:
    """`docker save` the image into a temporary archive for the duration, received as save_chunks receives it."""
    from docker.errors import DockerException, ImageNotFound

    try:
        found = sdk().images.get(image)
    except ImageNotFound:
        raise AdvisorError(f"no image {image!r} in this engine (build or pull it first, or give a file)") from None
    with tempfile.TemporaryDirectory(prefix="image-advisor-") as tmp:
        path = Path(tmp) / "image.tar"
        try:
            with path.open("wb") as out:
                for views in _saved_blocks(found, image):
                    out.writelines(views)
        except (DockerException, BodyError) as exc:
            raise AdvisorError(f"docker save {image} failed: {exc}") from None
        except OSError as exc:  # the temporary folder's disk full, or not writable
            raise AdvisorError(f"could not write {image}'s docker save under {tmp}: "
                               f"{exc.strerror or exc} (TMPDIR names another folder)") from None
        yield path
