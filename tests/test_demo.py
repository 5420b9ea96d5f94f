"""`s2f demo` end to end: the quick demo learns the synthetic world; its control (strength 0) cannot.

Both are slow (minutes); CI runs them. The thresholds leave room for the float differences between CPUs:
each run is seeded, but a different BLAS may round differently and so train a slightly different model.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from speech2face.cli import main
from speech2face.demo import DemoSize, run_demo

pytestmark = pytest.mark.slow


def test_quick_demo_beats_chance_by_far(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC DATA" in printed and "[demo] evaluate done" in printed
    import json

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    cos = metrics["retrieval"]["cos"]
    print(f"quick demo: {cos['queries']} held-out speakers, pool {cos['pool']}: R@1 {cos['R@1']:.3f} "
          f"(chance {cos['chance_R@1']:.3f}), R@5 {cos['R@5']:.3f} (chance {cos['chance_R@5']:.3f})")
    queries, pool = cos["queries"], cos["pool"]
    assert pool == min(100, metrics["protocol"]["speakers"]) and queries >= 40
    # Judged on the whole ranking, not on R@1 alone: over ~56 queries R@1 is a count of 2 to 6 hits, and
    # the same code trained the same way has given 6 hits on one machine and 2 on another (different
    # library builds round differently) while its mean rank, R@5, R@10 and 1:2 matching were as good or better.
    rank_error = math.sqrt((pool**2 - 1) / 12 / queries)  # of the mean of uniform ranks 1..pool
    assert cos["mean_rank"] < cos["chance_mean_rank"] - 4 * rank_error
    assert cos["R@5"] >= 2 * cos["chance_R@5"] and cos["R@10"] >= 2 * cos["chance_R@10"]
    assert cos["R@1"] > cos["chance_R@1"]
    assert metrics["matching_1_of_2"]["any"]["accuracy"] > 0.7
    assert "SYNTHETIC DATA" in (tmp_path / "report" / "report.html").read_text()


def test_control_world_stays_at_chance(tmp_path: Path) -> None:
    """The same pipeline on a world whose voices are independent of the faces: every measure at chance,
    within 4 standard errors of the null."""
    metrics = run_demo(tmp_path, strength=0.0, progress=False,
                       size=DemoSize(identities=200, clips=1, decoder_steps=100, voice_steps=300))
    cos = metrics["retrieval"]["cos"]
    queries, pool = cos["queries"], cos["pool"]
    assert queries >= 40
    rank_error = math.sqrt((pool**2 - 1) / 12 / queries)  # of the mean of uniform ranks 1..pool
    assert abs(cos["mean_rank"] - cos["chance_mean_rank"]) < 4 * rank_error
    p5 = cos["chance_R@5"]
    assert cos["R@5"] < p5 + 4 * math.sqrt(p5 * (1 - p5) / queries)
    matching = metrics["matching_1_of_2"]["any"]
    assert abs(matching["accuracy"] - 0.5) < 4 * 0.5 / math.sqrt(matching["trials"])
