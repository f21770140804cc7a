"""Bounded memory per request: forward passes planned by a token budget, and the cgroup limit respected."""

from __future__ import annotations

import pytest

from app.backends import plan_batches
from app.backends.memory import MemoryGuard, MemoryLimitError, in_use_bytes, limit_bytes

MiB = 1 << 20


def test_passes_hold_at_most_the_token_budget():
    lengths = [512] * 8 + [12] * 40 + [200, 300]
    batches = plan_batches(lengths, batch_size=32, batch_tokens=512)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every text, once
    for b in batches:
        assert len(b) <= 32
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 512
    assert sum(1 for b in batches if max(lengths[i] for i in b) == 512) == 8  # the longest go one by one


def test_short_texts_still_share_a_pass():
    assert plan_batches([10] * 40, batch_size=32, batch_tokens=512) == [list(range(32)), list(range(32, 40))]
    assert plan_batches([], 32, 512) == []


def cgroup_v2(root, limit: str, current: int, inactive: int = 0):
    root.mkdir(exist_ok=True)
    (root / "memory.max").write_text(limit + "\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon {current}\ninactive_file {inactive}\n")
    return root


def cgroup_v1(root, limit: int, usage: int, inactive: int = 0):
    (root / "memory").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (root / "memory" / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (root / "memory" / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {inactive}\n")
    return root


def test_reads_both_cgroup_versions(tmp_path):
    v2 = cgroup_v2(tmp_path / "v2", "268435456", 150 * MiB, 20 * MiB)
    assert limit_bytes(v2) == 256 * MiB and in_use_bytes(v2) == 130 * MiB
    v1 = cgroup_v1(tmp_path / "v1", 512 * MiB, 200 * MiB, 50 * MiB)
    assert limit_bytes(v1) == 512 * MiB and in_use_bytes(v1) == 150 * MiB


def test_no_limit_means_no_refusal(tmp_path):
    assert limit_bytes(cgroup_v2(tmp_path, "max", 10)) is None
    MemoryGuard(tmp_path).check(1 << 40)
    assert limit_bytes(tmp_path / "nowhere") is None  # not Linux, or no cgroup: nothing to read


def test_v1_unlimited_is_no_limit(tmp_path):
    assert limit_bytes(cgroup_v1(tmp_path, 9223372036854771712, 10)) is None


def test_a_pass_that_does_not_fit_is_refused_with_the_figures(tmp_path):
    guard = MemoryGuard(cgroup_v2(tmp_path, str(160 * MiB), 100 * MiB))
    guard.check(30 * MiB)  # fits: 100 + 30 + 16 margin <= 160
    with pytest.raises(MemoryLimitError, match=r"limit \(160 MiB, 100 MiB in use\).*at least 227 MiB"):
        guard.check(110 * MiB)


def test_memory_already_held_by_an_earlier_pass_is_not_counted_twice(tmp_path):
    guard = MemoryGuard(cgroup_v2(tmp_path, str(160 * MiB), 100 * MiB))
    guard.ran(60 * MiB)  # the runtime kept a 60 MiB pass's memory: in use already includes it
    guard.check(60 * MiB)
    guard.check(100 * MiB)  # only 40 MiB of it is new
    with pytest.raises(MemoryLimitError):
        guard.check(120 * MiB)
    guard.released()  # handed back to the OS: a 60 MiB pass is new memory again
    with pytest.raises(MemoryLimitError):
        guard.check(60 * MiB)


def test_the_service_answers_413_not_a_reset(tiny_classifier, tmp_path):
    from app.server import create_app
    from app.settings import Settings

    saved = tiny_classifier.memory
    tiny_classifier.memory = MemoryGuard(cgroup_v2(tmp_path, str(10 * MiB), 9 * MiB))
    try:
        client = create_app(tiny_classifier, Settings()).test_client()
        resp = client.post("/classify", json={"texts": ["a long and rather wonderful film " * 40] * 4})
    finally:
        tiny_classifier.memory = saved
    assert resp.status_code == 413
    assert resp.get_json()["status"] == 413 and "memory" in resp.get_json()["error"]


def test_counting_then_predicting_tokenises_once(tiny_classifier, monkeypatch):
    """The server counts tokens (MAX_TOKENS) and then predicts the same texts: the counts are reused."""
    calls = []
    original = tiny_classifier._token_counts
    monkeypatch.setattr(tiny_classifier, "_token_counts", lambda texts: calls.append(list(texts)) or original(texts))
    texts = ["a fine film", "a dull one"]
    tiny_classifier.count_tokens(texts)
    tiny_classifier.predict(texts)
    assert calls == [texts]
    tiny_classifier.predict(texts)  # no count before it: counted anew
    tiny_classifier.predict(["other texts"])
    assert calls == [texts, texts, ["other texts"]]
