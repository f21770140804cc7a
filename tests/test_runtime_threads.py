"""make runtime-threads compares each option with app/ round by round, so the machine's drift over a run
does not pass for a difference between options."""

from __future__ import annotations

from scripts.bench import runtime_threads


def rounds(*values: float) -> list[dict]:
    return [dict.fromkeys(runtime_threads.FIGURES, v) for v in values]


def test_each_option_is_compared_with_app_in_the_same_round():
    # app/ measured 2, 3, 4 ms over three rounds; the option 3.6, 1.8 and 2.7 ms in those rounds. Its median
    # (2.7) against app/'s (3) would say 0.90x; round by round it is 1.8x, 0.6x and 0.675x: 0.68x.
    options = {"app": runtime_threads.summarize(rounds(2, 3, 4)),
               "other": runtime_threads.summarize(rounds(3.6, 1.8, 2.7))}
    runtime_threads.ratios(options)
    assert options["other"]["p50_ms"] == 2.7 and options["app"]["p50_ms"] == 3
    assert options["other"]["vs_app"]["p50_ms"] == 0.68
    assert options["app"]["vs_app"] == dict.fromkeys(runtime_threads.FIGURES, 1.0)
