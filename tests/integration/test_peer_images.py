"""Integration: the peers make test can afford (scripts/peers.py CI_PEERS) built cold and smoke-tested.

Each answers the sample sentences right or the test fails (scripts/images/peer_images.check_answers);
the slim packaging also runs as non-root without a shell, as this repository's images do.
"""

from __future__ import annotations

import pytest

from scripts.images.container import Container, has_shell, process_uids
from scripts.images.peer_images import build, prepared, smoke
from scripts.infra.engine import docker
from scripts.peers import BY_NAME, CI_PEERS, PACKAGINGS


@pytest.fixture(scope="module")
def setup():
    return prepared()


@pytest.mark.parametrize("packaging", PACKAGINGS)
@pytest.mark.parametrize("name", CI_PEERS)
def test_peer_image_builds_and_answers_right(setup, name, packaging):
    peer = BY_NAME[name]
    image = peer.image(packaging)
    try:
        build(peer, packaging, setup)
        assert smoke(peer, packaging) > 0
        if packaging == "slim":
            container = Container(image, peer.run_options(packaging)).start()
            try:
                assert process_uids(container.id) == {65532}
            finally:
                container.remove()
            assert not has_shell(image)
    finally:
        docker("rmi", "-f", image, check=False)
