"""`s2f demo`: the whole pipeline on a synthetic world it makes itself, stage by stage.

    synth -> prepare -> train-decoder -> train (small) -> evaluate

`--quick` is sized for about 10 minutes on 2 CPU cores; the full demo trains longer on a bigger world.
`strength` 0 builds the control world (voice independent of face): the same pipeline must stay at chance.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSize:
    identities: int
    clips: int
    decoder_steps: int
    voice_steps: int


QUICK = DemoSize(identities=100, clips=2, decoder_steps=300, voice_steps=900)
FULL = DemoSize(identities=200, clips=4, decoder_steps=2000, voice_steps=6000)


def run_demo(out: str | Path, quick: bool = True, seed: int = 0, strength: float = 1.0, workers: int = 2,
             progress: bool = True, size: DemoSize | None = None) -> dict[str, Any]:
    """Run every stage into `out` (resumable stage by stage); returns the evaluation metrics.
    `size` overrides the quick / full presets (tests use a tiny one)."""
    from .data import PrepareSettings, manifests, prepare
    from .report import evaluate_model
    from .synth import WorldSettings, make_world
    from .train import DecoderTraining, VoiceTraining, train_decoder, train_voice

    size = size or (QUICK if quick else FULL)
    out = Path(out)
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        timings[name] = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)

    stage("synth")
    # half the unexplained face variation of the default world: learnable in minutes on a CPU
    world = make_world(out / "world", WorldSettings(size.identities, size.clips, seed, strength, face_noise=0.5),
                       workers=workers, progress=progress)
    stage("prepare")
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", r"^(.+)_\d+$")
    prepare(segments, out / "data", PrepareSettings(val=0.15, test=0.15), workers=workers, progress=progress,
            synthetic=True)
    stage("train-decoder")
    if not (out / "decoder" / "eval.json").is_file():
        train_decoder(out / "data", out / "decoder", DecoderTraining(steps=size.decoder_steps, eval_every=10**9,
                                                                      seed=seed), resume=True, progress=progress)
    stage("train")
    if not (out / "voice" / "eval.json").is_file():
        train_voice(out / "data", out / "decoder", out / "voice",
                    VoiceTraining(steps=size.voice_steps, distill="none", eval_every=max(100, size.voice_steps // 3),
                                  seed=seed), resume=True, progress=progress)
    stage("evaluate")
    labels = world / "attributes.csv"
    metrics = evaluate_model(out / "voice", out / "data", out / "report", labels=labels, seed=seed)
    start = timings["synth"]
    print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {out / 'report' / 'report.html'}")
    return metrics
