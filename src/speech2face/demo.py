"""`s2f demo`: the whole pipeline on a synthetic world it makes itself, stage by stage.

    face decoder (photos: celeba-999 -> prepare --images -> train-decoder --size medium -> evaluate-decoder)
    synth -> prepare -> train (small, through that decoder) -> evaluate -> real voices -> package

As in the paper, the face decoder learns from face photographs alone: the packaged CelebA collection (999 real
photos; CelebA's terms: non-commercial research only). `decoder`: "photos" trains it (about 28 minutes on 2 CPU
cores), "shipped" reuses the decoder the package ships (which `s2f demo --decoder-only --ship` made),
"auto" (default) reuses the shipped one in the quick demo where there is one, else trains it; or a folder.
`--quick` takes about 3 minutes on 2 CPU cores with the shipped decoder; the full demo learns the decoder too, on a
bigger world. `strength` 0 builds the control world (voice independent of face): the same pipeline must stay at
chance. The quick demo's model is the one the package ships (`ship`, `s2f demo --quick --ship`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .data import PrepareSettings, manifests, prepare
from .data.photos import CELEBA_999, DECODER_SPLITS, read_photos
from .errors import DataError, ModelError
from .evaluate.photos import DecoderEvaluationSettings, evaluate_decoder, table_lines
from .evaluate.protocol import EvaluationSettings, evaluate_model
from .evaluate.real_voices import judge_real_voices
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
    read_json,
)
from .models.face_decoder import FaceDecoder
from .pipeline import Speech2Face
from .synth import SPEAKER_PATTERN, WorldSettings, make_world
from .train import DecoderTraining, VoiceTraining, train_decoder, train_voice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSize:
    identities: int
    clips: int
    decoder_steps: int  # of the photo decoder, when the demo trains it
    voice_steps: int
    photos: int | None = None  # of the collection, when the demo trains the decoder (None: all)
    seconds: float = 6.0  # of speech per clip, at least: the voice encoder's window


# a quarter of the face variation no attribute explains in a world of portraits (--faces portraits); photo worlds show
# each real face as it is
DEMO_FACE_NOISE = 0.25
PHOTO_DECODER_STEPS = 2500  # 128 px on 2 CPU cores: ~28 minutes (docs/face_decoder.md)
# the world's split: 420 identities -> 101 test speakers (retrieval in pools of 100) and 18 val, all on photos no
# decoder trained on; 301 training speakers
WORLD_SPLITS = {"val": 0.05, "test": 0.25}
# voice_steps: of a voice encoder that learns by gradient (--no-fit-head, or a fine-tuned backbone)
QUICK = DemoSize(identities=420, clips=1, decoder_steps=PHOTO_DECODER_STEPS, voice_steps=700)
FULL = DemoSize(identities=800, clips=1, decoder_steps=PHOTO_DECODER_STEPS, voice_steps=3000)
DECODERS = ("auto", "photos", "shipped")  # or a decoder folder
DECODER_FIGURES = "decoder_photos"  # the card's section of the decoder's held-out photo figures
DEMO_TERMS = ("its face decoder learnt from CelebA photos: for non-commercial research only (CelebA's terms; the "
              "photos keep their owners' copyright)")
# the shipped demo's voice encoder (s2f demo --voice-backbone, --[no-]finetune-backbone, --[no-]fit-head): the
# frozen speaker encoder and a ridge head, chosen by benchmarks/voice_backbones.py on the quick world and the
# choosing half of the held-out real voices
VOICE_BACKBONE = "speaker"
FINETUNE_BACKBONE = False
FIT_HEAD = True


def voice_settings(size: DemoSize, seed: int, voice_backbone: str = VOICE_BACKBONE,
                   finetune_backbone: bool = FINETUNE_BACKBONE, fit_head: bool = FIT_HEAD) -> Any:
    """How the demo trains its voice encoder (benchmarks/voice_backbones.py trains the others the same way). A
    fitted head on a frozen backbone takes no gradient step: steps of the paper's loss after it made it worse
    (benchmarks/voice_backbones.py, speaker-ridge-trained)."""
    fit_head = fit_head and voice_backbone == "speaker"
    steps = 0 if fit_head and not finetune_backbone else size.voice_steps
    return VoiceTraining(steps=steps, distill="none", eval_every=max(100, steps // 3), seed=seed,
                         voice_backbone=voice_backbone, finetune_backbone=finetune_backbone, fit_head=fit_head)


def decoder_settings(size: DemoSize, seed: int) -> Any:
    """How the demo trains its photo decoder: 128 px, flips and same-sex morphs (docs/face_decoder.md)."""
    return DecoderTraining(size="medium", steps=size.decoder_steps, flip=0.5, morph=0.3, seed=seed,
                           eval_every=max(100, size.decoder_steps // 5))


def photo_decoder(out: Path, size: DemoSize, seed: int, workers: int, progress: bool) -> Path:
    """The face decoder learnt from the packaged photos: OUT/photos (shards), OUT/decoder (the run),
    OUT/report-decoder (its held-out photo evaluation); each step resumes. Returns the run."""
    photos = read_photos(CELEBA_999)[: size.photos]
    prepare(photos, out / "photos", PrepareSettings(**DECODER_SPLITS), workers=workers, progress=progress)
    if not (out / "decoder" / EVAL_FILE).is_file():
        train_decoder(out / "photos", out / "decoder", decoder_settings(size, seed), resume=True, progress=progress)
    report = out / "report-decoder"
    if not (report / "metrics.json").is_file():
        judged = evaluate_decoder(out / "decoder", [out / "photos"], report, DecoderEvaluationSettings(seed=seed))
        print("\n".join(table_lines(judged)))
    return out / "decoder"


def decoder_summary(report: Path) -> dict[str, Any]:
    """The card's figures of a photo decoder, from its `evaluate-decoder` metrics."""
    found = read_json(report / "metrics.json")
    rows = ("decoder", "nearest_training_face", "mean_face")
    return {"protocol": found["protocol"], "identities": found["identities"], "pool": found["pool"],
            "image_size": found["image_size"], "training_photos": found["training_photos"],
            "scorer": found["scorer"]["network"], "judge": found["judge"]["network"],
            "chance_R@1": found["chance"]["R@1"], "chance_R@5": found["chance"]["R@5"],
            **{row: {"R@1": found[row]["scorer"]["R@1"], "R@5": found[row]["scorer"]["R@5"],
                     "cosine": found[row]["scorer"]["cosine"], "sex_agreement": found[row]["judge"]["sex_agreement"],
                     "age_mean_abs_difference": found[row]["judge"]["age_mean_abs_difference"],
                     "landmark_error_iod_pct": found[row]["landmark_error_iod_pct"]} for row in rows}}


def demo_decoder(out: Path, decoder: str, quick: bool, size: DemoSize, seed: int, workers: int,
                 progress: bool) -> tuple[Path, dict[str, Any]]:
    """The decoder the voice encoder trains through (trained from photos, the shipped one, or a folder), and
    its photo figures for the card (empty for a folder of unknown origin)."""
    if decoder == "auto":
        decoder = "shipped" if quick and (SHIPPED_DEMO / DECODER_DIR / WEIGHTS_FILE).is_file() else "photos"
    if decoder in ("photos", "shipped"):
        print(f"[demo] note: {DEMO_TERMS}", flush=True)
    if decoder == "photos":
        run = photo_decoder(out, size, seed, workers, progress)
        return run, decoder_summary(out / "report-decoder")
    source = SHIPPED_DEMO / DECODER_DIR if decoder == "shipped" else Path(decoder)
    target = out / "decoder"
    if not (target / WEIGHTS_FILE).is_file():
        FaceDecoder.from_pretrained(source).save_pretrained(target)  # checked, float32
    print(f"[demo] face decoder: {source}", flush=True)
    shipped = ModelCard.read(SHIPPED_DEMO).evaluation.get(DECODER_FIGURES, {}) if decoder == "shipped" else {}
    return target, shipped


@dataclass(frozen=True)
class DemoSettings:
    """What `s2f demo` runs (the CLI's defaults)."""

    quick: bool = False  # the QUICK size (~3 min on 2 cores), else FULL
    seed: int = 0
    strength: float = 1.0  # the world's voice-face link (0: the control)
    workers: int = 2  # processes for synth and prepare
    voice_backbone: str = VOICE_BACKBONE  # as s2f train --voice-backbone
    finetune_backbone: bool = FINETUNE_BACKBONE
    fit_head: bool = FIT_HEAD  # with the speaker backbone: the head by ridge regression (s2f train --fit-head)
    decoder: str = "auto"  # one of DECODERS, or a decoder folder (see the module's docstring)
    speakers: str = "all"  # the world's source speakers (s2f synth --speakers)


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings(), *, progress: bool = True,
             size: DemoSize | None = None) -> dict[str, Any]:
    """Run every stage into `out` (resumable stage by stage); returns the evaluation metrics.
    `size` overrides the quick / full presets (tests use a tiny one)."""
    quick, seed, strength, workers = settings.quick, settings.seed, settings.strength, settings.workers
    size = size or (QUICK if quick else FULL)
    training = voice_settings(size, seed, settings.voice_backbone, settings.finetune_backbone, settings.fit_head)
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

    stage("face decoder")
    decoder_dir, decoder_figures = demo_decoder(out, settings.decoder, quick, size, seed, workers, progress)
    stage("synth")
    world = make_world(out / "world", WorldSettings(size.identities, size.clips, seed, strength,
                                                    face_noise=DEMO_FACE_NOISE, speakers=settings.speakers,
                                                    seconds=size.seconds, **WORLD_SPLITS),
                       workers=workers, progress=progress)
    stage("prepare")
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, out / "data", PrepareSettings(**WORLD_SPLITS), workers=workers, progress=progress,
            synthetic=True)
    stage("train")
    if not (out / "voice" / EVAL_FILE).is_file():
        train_voice(out / "data", decoder_dir, out / "voice", training, resume=True, progress=progress)
    stage("evaluate")
    labels = world / "attributes.csv"
    metrics = evaluate_model(out / "voice", out / "data", out / "report", labels=labels,
                             settings=EvaluationSettings(seed=seed))
    stage("real voices")
    what = describe_backbone(training.voice_backbone, training.finetune_backbone, training.fit_head)
    real = real_voices(out, metrics, seed, strength, what, decoder_figures)
    stage("package")
    package_demo(out, metrics, real, seed, strength, what, decoder_figures)
    stage(None)
    print(f"[demo] all done in {time.perf_counter() - started:.0f} s; report: {out / 'report' / 'report.html'}")
    return metrics


def describe_backbone(voice_backbone: str, finetune_backbone: bool, fit_head: bool = False) -> str:
    if voice_backbone == "speaker":
        head = "a linear head fitted in closed form (ridge regression)" if fit_head else "an MLP head"
        return ("voice encoder on a pretrained speaker encoder (Resemblyzer GE2E, "
                + ("fine-tuned" if finetune_backbone else "frozen") + f") + {head}")
    return "small voice encoder (the paper's CNN)"


def demo_card(metrics: dict[str, Any], real: dict[str, Any] | None, seed: int, strength: float, what: str,
              decoder_figures: dict[str, Any] | None = None) -> ModelCard:
    """What the demo model is, with its figures beside their chance levels."""
    cos = metrics["retrieval"]["cos"]
    evaluation: dict[str, Any] = {
        "speakers": metrics["protocol"]["speakers"], "pool": cos["pool"], "R@1": cos["R@1"],
        "chance_R@1": cos["chance_R@1"], "R@5": cos["R@5"], "chance_R@5": cos["chance_R@5"],
        "mean_rank": cos["mean_rank"], "chance_mean_rank": cos["chance_mean_rank"],
        "matching_1_of_2": metrics["matching_1_of_2"]["any"]["accuracy"]}
    judged = metrics.get("judge", {})
    if "sex" in judged:
        evaluation["judge_sex_agreement"] = judged["sex"]["voice"]["agreement"]
        evaluation["judge_sex_chance"] = judged["sex"]["voice"]["chance"]
        evaluation["judge_sex_agreement_upper_bound"] = judged["sex"]["upper_bound"]["agreement"]
    if real is not None:
        evaluation["real_voices_sex_agreement"] = real["agreement"]
        evaluation["real_voices_chance"] = real["chance"]
        evaluation["real_voices_prompts"] = f"the {real['half']} half (evaluate/real_voices.py)"
        evaluation["real_voices"] = {name: found["agreement"] for name, found in real["speakers"].items()}
    if decoder_figures:
        evaluation[DECODER_FIGURES] = decoder_figures
    return ModelCard(
        name="demo" if strength == 1.0 else f"demo-strength-{strength:g}", synthetic=True,
        description=(f"{what}, trained by `s2f demo --quick` on a synthetic world (seed {seed}, strength "
                     f"{strength:g}), through {describe_decoder(decoder_figures)}. Real: the world's faces (CelebA "
                     "photos of real people; held-out speakers wear photos the decoder never trained on) and its 17 "
                     "source speakers (Debian packages: recorded, or Festival/flite voices built from real "
                     "speakers). Synthetic: which voice goes with which face, and Praat's transformation of each "
                     "voice to the pitch, vocal-tract length, rate and intonation its face's attributes set."),
        face_encoder="dlib-torch", evaluation=evaluation, terms=DEMO_TERMS if decoder_figures else "")


def describe_decoder(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "a face decoder of unknown training"
    return (f"a {figures['image_size']} px face decoder learnt from {figures['training_photos']} real CelebA photos "
            f"(`s2f demo --decoder-only`; held out: {figures['identities']} photos, FaceNet R@1 "
            f"{figures['decoder']['R@1']:.2f} in pools of {figures['pool']}, chance {figures['chance_R@1']:.2f})")


def real_voices(out: Path, metrics: dict[str, Any], seed: int, strength: float, what: str,
                decoder_figures: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The trained model on held-out real voices (`evaluate.real_voices`), saved as report/real_voices.json;
    None (said) where the judge or the recordings are not installed."""
    package_run(out / "voice", out / DEMO_MODEL_DIR, demo_card(metrics, None, seed, strength, what, decoder_figures))
    try:
        found = judge_real_voices(Speech2Face.from_pretrained(out / DEMO_MODEL_DIR, device="cpu"), seed=seed)
    except (DataError, ModelError) as error:
        print(f"[demo] real voices skipped: {error}", flush=True)
        return None
    write_json(out / "report" / "real_voices.json", found)
    print(f"[demo] held-out real voices ({found['half']} prompts): the judge calls the drawn face the speaker's sex in "
          f"{found['agreement']:.0%} of {found['recordings']} recordings (chance 50%): "
          + ", ".join(f"{name} {v['agreement']:.0%}" for name, v in found["speakers"].items()), flush=True)
    return found


def package_demo(out: Path, metrics: dict[str, Any], real: dict[str, Any] | None, seed: int,
                 strength: float, what: str, decoder_figures: dict[str, Any] | None = None) -> Path:
    """`out/model`: the demo's voice encoder and decoder as one model folder (`Speech2Face.from_pretrained`)."""
    return package_run(out / "voice", out / DEMO_MODEL_DIR,
                       demo_card(metrics, real, seed, strength, what, decoder_figures))


def ship(model: Path, destination: Path = SHIPPED_DEMO) -> Path:
    """Write a demo model folder as the package ships it: floating-point weights as fp16 (half the size; they
    load into float32 networks), and each file's sha256 in the card (checked by tests/test_demo.py)."""
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


def ship_decoder(out: Path, destination: Path = SHIPPED_DEMO) -> Path:
    """`s2f demo --decoder-only --ship`: the photo decoder of a demo output (OUT/decoder, OUT/report-decoder)
    becomes the shipped model's decoder (fp16), its figures and CelebA's terms go into the card. The figures that
    depend on drawn faces (the judge's, the real voices') are dropped until `s2f demo --quick --ship` measures
    them again through the new decoder; the feature-space figures stand (the feature space is unchanged)."""
    new = FaceDecoder.from_pretrained(out / DECODER_DIR)
    voice = ModelCard.read(destination)
    if new.config.feature_dim != FaceDecoder.from_pretrained(destination / DECODER_DIR).config.feature_dim:
        raise ModelError("the new decoder reads another feature size than the shipped voice encoder predicts")
    work = destination.with_name(destination.name + ".decoder")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(destination / VOICE_DIR, work / VOICE_DIR)
    (work / DECODER_DIR).mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(out / DECODER_DIR / name, work / DECODER_DIR / name)
    figures = decoder_summary(out / "report-decoder")
    evaluation = {k: v for k, v in voice.evaluation.items() if not k.startswith(("judge_", "real_voices"))}
    ModelCard(name=voice.name, synthetic=voice.synthetic, face_encoder=voice.face_encoder,
              description=f"face decoder: {describe_decoder(figures)}. Voice encoder: that of the model before, "
                          f"unchanged ({voice.description}). Rebuild the whole model through this decoder with "
                          "`s2f demo --quick --ship`.",
              evaluation=evaluation | {DECODER_FIGURES: figures}, terms=DEMO_TERMS).write(work)
    try:
        return ship(work, destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)
