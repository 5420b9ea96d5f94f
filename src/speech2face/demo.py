"""`s2f demo`: the whole pipeline on a synthetic world it makes itself, stage by stage.

    synth -> prepare -> train-decoder -> train (small) -> evaluate -> real voices -> package

`--quick` is sized for about 10 minutes on 2 CPU cores; the full demo trains longer on a bigger world.
`strength` 0 builds the control world (voice independent of face): the same pipeline must stay at chance.
The quick demo's model is the one the package ships (`ship`, `s2f demo --quick --ship`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import sha256_of, write_json
from .model_folder import (
    CONFIG_FILE,
    DECODER_DIR,
    DEMO_MODEL_DIR,
    EVAL_FILE,
    SHIPPED_DEMO,
    VOICE_DIR,
    WEIGHTS_FILE,
    ModelCard,
    package_run,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSize:
    identities: int
    clips: int
    decoder_steps: int
    voice_steps: int


# a quarter of the face variation no attribute explains (shape noise, skin tone, light): a world a CPU can
# learn in minutes; the voice still has to find three attributes through pitch, formants and rate
DEMO_FACE_NOISE = 0.25
QUICK = DemoSize(identities=200, clips=1, decoder_steps=300, voice_steps=900)
FULL = DemoSize(identities=400, clips=1, decoder_steps=1000, voice_steps=3000)
VOICE_BACKBONE = "speaker"  # the shipped demo's (s2f demo --voice-backbone): benchmarks/voice_backbones.py


def voice_settings(size: DemoSize, seed: int, voice_backbone: str = VOICE_BACKBONE,
                   finetune_backbone: bool = False) -> Any:
    """How the demo trains its voice encoder (benchmarks/voice_backbones.py trains the others the same way)."""
    from .train import VoiceTraining

    return VoiceTraining(steps=size.voice_steps, distill="none", eval_every=max(100, size.voice_steps // 3), seed=seed,
                         voice_backbone=voice_backbone, finetune_backbone=finetune_backbone)


def run_demo(out: str | Path, quick: bool = True, seed: int = 0, strength: float = 1.0, workers: int = 2,
             progress: bool = True, size: DemoSize | None = None, voice_backbone: str = VOICE_BACKBONE,
             finetune_backbone: bool = False) -> dict[str, Any]:
    """Run every stage into `out` (resumable stage by stage); returns the evaluation metrics.
    `size` overrides the quick / full presets (tests use a tiny one); `voice_backbone`: `s2f train`'s."""
    from .data import PrepareSettings, manifests, prepare
    from .evaluate.protocol import evaluate_model
    from .synth import SPEAKER_PATTERN, WorldSettings, make_world
    from .train import DecoderTraining, train_decoder, train_voice

    size = size or (QUICK if quick else FULL)
    out = Path(out)
    started = time.perf_counter()
    current: list[tuple[str, float]] = []

    def stage(name: str | None) -> None:
        """Close the running stage (printing its time) and start `name`."""
        now = time.perf_counter()
        if current:
            print(f"[demo] {current[-1][0]} done in {now - current[-1][1]:.0f} s", flush=True)
        if name is not None:
            current.append((name, now))
            print(f"[demo] {name} ...", flush=True)

    stage("synth")
    world = make_world(out / "world", WorldSettings(size.identities, size.clips, seed, strength,
                                                    face_noise=DEMO_FACE_NOISE),
                       workers=workers, progress=progress)
    stage("prepare")
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, out / "data", PrepareSettings(val=0.15, test=0.15), workers=workers, progress=progress,
            synthetic=True)
    stage("train-decoder")
    if not (out / "decoder" / EVAL_FILE).is_file():
        train_decoder(out / "data", out / "decoder", DecoderTraining(steps=size.decoder_steps, eval_every=10**9,
                                                                      seed=seed), resume=True, progress=progress)
    stage("train")
    if not (out / "voice" / EVAL_FILE).is_file():
        train_voice(out / "data", out / "decoder", out / "voice",
                    voice_settings(size, seed, voice_backbone, finetune_backbone), resume=True, progress=progress)
    stage("evaluate")
    labels = world / "attributes.csv"
    metrics = evaluate_model(out / "voice", out / "data", out / "report", labels=labels, seed=seed)
    stage("real voices")
    what = describe_backbone(voice_backbone, finetune_backbone)
    real = real_voices(out, metrics, seed, strength, what)
    stage("package")
    package_demo(out, metrics, real, seed, strength, what)
    stage(None)
    print(f"[demo] all done in {time.perf_counter() - started:.0f} s; report: {out / 'report' / 'report.html'}")
    return metrics


def describe_backbone(voice_backbone: str, finetune_backbone: bool) -> str:
    if voice_backbone == "speaker":
        return ("voice encoder on a pretrained speaker encoder (Resemblyzer GE2E, "
                + ("fine-tuned" if finetune_backbone else "frozen") + ") + an MLP head")
    return "small voice encoder (the paper's CNN)"


def demo_card(metrics: dict[str, Any], real: dict[str, Any] | None, seed: int, strength: float, what: str) -> ModelCard:
    """What the demo model is, with its figures beside their chance levels."""
    cos = metrics["retrieval"]["cos"]
    evaluation: dict[str, Any] = {
        "speakers": metrics["protocol"]["speakers"], "pool": cos["pool"], "R@1": cos["R@1"],
        "chance_R@1": cos["chance_R@1"], "R@5": cos["R@5"], "chance_R@5": cos["chance_R@5"],
        "matching_1_of_2": metrics["matching_1_of_2"]["any"]["accuracy"]}
    judged = metrics.get("judge", {})
    if "sex" in judged:
        evaluation["judge_sex_agreement"] = judged["sex"]["voice"]["agreement"]
        evaluation["judge_sex_chance"] = judged["sex"]["voice"]["chance"]
        evaluation["judge_sex_agreement_upper_bound"] = judged["sex"]["upper_bound"]["agreement"]
    if real is not None:
        evaluation["real_voices_sex_agreement"] = real["agreement"]
        evaluation["real_voices_chance"] = real["chance"]
        evaluation["real_voices"] = {name: found["agreement"] for name, found in real["speakers"].items()}
    return ModelCard(
        name="demo" if strength == 1.0 else f"demo-strength-{strength:g}", synthetic=True,
        description=(f"{what} and face decoder trained by `s2f demo --quick` on a synthetic world "
                     f"(seed {seed}, strength {strength:g}). Real: the portraits (public domain) and the recorded "
                     "speakers (Debian packages). Synthetic: which voice goes with which face, the morphs and "
                     "warps of the faces, and Praat's transformation of the voices."),
        face_encoder="dlib-torch", evaluation=evaluation)


def real_voices(out: Path, metrics: dict[str, Any], seed: int, strength: float,
                what: str) -> dict[str, Any] | None:
    """The trained model on held-out real voices (`evaluate.real_voices`), saved as report/real_voices.json;
    None (said) where the judge or the recordings are not installed."""
    from .errors import DataError, ModelError
    from .evaluate.real_voices import judge_real_voices
    from .pipeline import Speech2Face

    package_run(out / "voice", out / DEMO_MODEL_DIR, demo_card(metrics, None, seed, strength, what))
    try:
        found = judge_real_voices(Speech2Face.from_pretrained(out / DEMO_MODEL_DIR, device="cpu"), seed=seed)
    except (DataError, ModelError) as error:
        print(f"[demo] real voices skipped: {error}", flush=True)
        return None
    write_json(out / "report" / "real_voices.json", found)
    print(f"[demo] held-out real voices: the judge calls the drawn face the speaker's sex in "
          f"{found['agreement']:.0%} of {found['recordings']} recordings (chance 50%): "
          + ", ".join(f"{name} {v['agreement']:.0%}" for name, v in found["speakers"].items()), flush=True)
    return found


def package_demo(out: Path, metrics: dict[str, Any], real: dict[str, Any] | None, seed: int,
                 strength: float, what: str) -> Path:
    """`out/model`: the demo's voice encoder and decoder as one model folder (`Speech2Face.from_pretrained`)."""
    return package_run(out / "voice", out / DEMO_MODEL_DIR, demo_card(metrics, real, seed, strength, what))


def ship(model: Path, destination: Path = SHIPPED_DEMO) -> Path:
    """Write a demo model folder as the package ships it: floating-point weights as fp16 (half the size; they
    load into float32 networks), and each file's sha256 in the card (checked by tests/test_demo.py)."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    card = ModelCard.read(model)
    files: dict[str, str] = {}
    for part in (VOICE_DIR, DECODER_DIR):
        (staging / part).mkdir(parents=True)
        shutil.copyfile(model / part / CONFIG_FILE, staging / part / CONFIG_FILE)
        with safe_open(str(model / part / WEIGHTS_FILE), framework="pt") as handle:
            metadata = handle.metadata()
        state = load_file(str(model / part / WEIGHTS_FILE))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                  str(staging / part / WEIGHTS_FILE), metadata=metadata)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            files[f"{part}/{name}"] = sha256_of(staging / part / name)
    card.files = files
    card.write(staging)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination


def build_model(target: Path, progress: bool = True, size: DemoSize | None = None) -> Path:
    """The registry's builder of `demo`: train it (`s2f demo --quick`) and keep its model folder as `target`."""
    work = target.with_name(target.name + ".build")
    print(f"[models] building the demo model once: s2f demo --quick --out {work} (about 10 minutes on 2 CPU cores)",
          flush=True)
    run_demo(work, quick=True, progress=progress, size=size)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(work / DEMO_MODEL_DIR, target)
    return target
