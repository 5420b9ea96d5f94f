"""The demo model the package ships, and `s2f demo` that makes it.

- The shipped files load strictly and are the files their card names (sha256), from an empty cache.
- On a world it never saw (another seed: new identities, new voices from the same recorded speakers) it
  retrieves faces from voices far above chance, and the real judge agrees on sex.
- The same pipeline on the control world (voice independent of face) stays at chance.
- `s2f demo --ship` (shrunk) packages a model folder with its figures and checksums.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face import Speech2Face
from speech2face.cli import main
from speech2face.data import read_shard
from speech2face.data.dataset import shard_paths
from speech2face.data.splits import voice_clip
from speech2face.demo import DECODER_FIGURES, DemoSettings, DemoSize, run_demo, ship
from speech2face.files import sha256_of
from speech2face.model_folder import DECODER_DIR, SHIPPED_DEMO, VOICE_DIR, WEIGHTS_FILE, ModelCard
from speech2face.models import FaceDecoder, SpeakerVoiceEncoder, load_voice_encoder
from speech2face.train.ridge import fit_ridge
from speech2face.voice.speakers import SpeakerEncoder


def test_the_shipped_demo_model_loads_at_once_and_matches_its_card(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    card = ModelCard.read(SHIPPED_DEMO)
    assert card.synthetic and card.name == "demo" and "Real:" in card.description
    assert sorted(card.files) == sorted(f"{part}/{name}" for part in (VOICE_DIR, DECODER_DIR)
                                        for name in ("config.json", WEIGHTS_FILE))
    for name, digest in card.files.items():
        assert sha256_of(SHIPPED_DEMO / name) == digest, name
    for key in ("R@1", "chance_R@1", "judge_sex_agreement", "real_voices_sex_agreement", DECODER_FIGURES):
        assert key in card.evaluation, key
    figures = card.evaluation[DECODER_FIGURES]  # the decoder learnt from real photos, judged on held-out ones
    assert figures["identities"] >= 100 and figures["pool"] == 100
    assert figures["decoder"]["R@1"] > figures["nearest_training_face"]["R@1"] > figures["chance_R@1"]
    assert "CelebA" in card.terms and "non-commercial" in card.terms and "CelebA" in card.label
    assert FaceDecoder.from_pretrained(SHIPPED_DEMO / DECODER_DIR).config.image_size == 128
    from safetensors import safe_open

    with safe_open(str(SHIPPED_DEMO / VOICE_DIR / WEIGHTS_FILE), framework="pt") as handle:
        assert {str(handle.get_tensor(k).dtype) for k in handle.keys()} >= {"torch.float16"}  # noqa: SIM118 (not a dict)
    assert isinstance(load_voice_encoder(SHIPPED_DEMO / VOICE_DIR), SpeakerVoiceEncoder)  # strict: weights fit
    FaceDecoder.from_pretrained(SHIPPED_DEMO / DECODER_DIR)
    monkeypatch.setenv("S2F_CACHE", str(tmp_path / "empty-cache"))
    model = Speech2Face.from_pretrained("demo", device="cpu")
    assert model.card.files == card.files and not (tmp_path / "empty-cache").exists()


@pytest.fixture(scope="module")
def unseen_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of a world the demo model never saw: seed 11, 80 identities; 80 % held out for evaluation (the
    rest only fit the evaluation's attribute probes), on photos no decoder trained on (a tenth of their clips
    fail prepare's frontal-face rule, which is stricter for video frames than for photos)."""
    from speech2face.data import PrepareSettings, manifests, prepare
    from speech2face.synth import SPEAKER_PATTERN, WorldSettings, make_world

    root = tmp_path_factory.mktemp("unseen")
    splits = {"val": 0.0, "test": 0.8}
    world = make_world(root / "world", WorldSettings(80, 1, seed=11, **splits), workers=2, progress=False)
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    prepare(segments, root / "data", PrepareSettings(**splits), workers=2, progress=False, synthetic=True)
    return root


@pytest.mark.slow
def test_the_shipped_model_finds_faces_from_voices_it_never_heard(unseen_world: Path) -> None:
    from speech2face.evaluate.protocol import EvaluationSettings, evaluate_model

    metrics = evaluate_model(SHIPPED_DEMO / VOICE_DIR, unseen_world / "data", unseen_world / "report",
                             decoder_dir=SHIPPED_DEMO / DECODER_DIR, labels=unseen_world / "world" / "attributes.csv",
                             settings=EvaluationSettings(seed=0, scorer=None))
    cos = metrics["retrieval"]["cos"]
    queries, pool = cos["queries"], cos["pool"]
    print(f"shipped demo on an unseen world: {queries} speakers, pool {pool}: R@1 {cos['R@1']:.3f} "
          f"(chance {cos['chance_R@1']:.3f}), mean rank {cos['mean_rank']:.1f} (chance {cos['chance_mean_rank']:.1f})")
    assert queries >= 45
    rank_error = math.sqrt((pool**2 - 1) / 12 / queries)  # of the mean of uniform ranks 1..pool
    assert cos["mean_rank"] < cos["chance_mean_rank"] - 4 * rank_error
    sex = metrics["judge"]["sex"]["voice"]
    assert sex["agreement"] >= 0.8, sex  # the judge: the face drawn from the voice vs the true face


@pytest.mark.slow
def test_control_world_stays_at_chance(tmp_path: Path) -> None:
    """The same pipeline on a world whose voices are independent of the faces: every measure at chance,
    within 4 standard errors of the null."""
    metrics = run_demo(tmp_path, DemoSettings(strength=0.0, decoder="shipped"),
                       progress=False,
                       size=DemoSize(identities=180, clips=1, decoder_steps=60, voice_steps=200, seconds=3.0))
    cos = metrics["retrieval"]["cos"]
    queries, pool = cos["queries"], cos["pool"]
    assert queries >= 40
    rank_error = math.sqrt((pool**2 - 1) / 12 / queries)  # of the mean of uniform ranks 1..pool
    assert abs(cos["mean_rank"] - cos["chance_mean_rank"]) < 4 * rank_error
    p5 = cos["chance_R@5"]
    assert cos["R@5"] < p5 + 4 * math.sqrt(p5 * (1 - p5) / queries)
    matching = metrics["matching_1_of_2"]["any"]
    assert abs(matching["accuracy"] - 0.5) < 4 * 0.5 / math.sqrt(matching["trials"])
    assert ModelCard.read(tmp_path / "model").name == "demo-strength-0"


@pytest.mark.slow
def test_demo_reports_real_voices_and_ships_its_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      spoken: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`s2f demo --quick --ship`, shrunk: every stage runs, the held-out real voices are judged, and the
    model is written as the package ships it (here into a temporary folder)."""
    from speech2face import demo

    monkeypatch.setattr(demo, "QUICK", DemoSize(identities=24, clips=1, decoder_steps=4, voice_steps=4))
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(demo, "ship", lambda model: ship(model, shipped))
    assert main(["demo", "--quick", "--out", str(tmp_path / "run"), "--ship", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "held-out real voices" in printed and "[demo] shipped:" in printed
    real = json.loads((tmp_path / "run" / "report" / "real_voices.json").read_text())
    assert set(real["speakers"]) == {"carlo", "menardi"} and real["recordings"] >= 10
    assert all(5 <= v["mean_seconds"] <= 25 for v in real["speakers"].values())
    card = ModelCard.read(shipped)
    assert card.evaluation["real_voices_sex_agreement"] == real["agreement"]
    for name, digest in card.files.items():
        assert sha256_of(shipped / name) == digest
    # fp16 on disk changes the face feature by no more than rounding
    full, half = (Speech2Face.from_pretrained(folder, device="cpu").predict(spoken["long"]).feature
                  for folder in (tmp_path / "run" / "model", shipped))
    assert float(np.dot(full, half) / np.linalg.norm(full) / np.linalg.norm(half)) > 0.999
    same_head_as_fitted_by_hand(tmp_path / "run")
    assert main(["demo", "--out", str(tmp_path / "x"), "--ship"]) == 2  # only the quick, seed-0, strength-1 demo
    assert "--ship writes the package's demo model" in capsys.readouterr().err


def same_head_as_fitted_by_hand(run: Path) -> None:
    """The demo's voice encoder (frozen speaker encoder, head fitted in closed form, no step) predicts what ridge
    regression fitted here on the training clips' d-vectors predicts, and training.json says what was chosen."""
    head = json.loads((run / "voice" / "training.json").read_text())["head_fit"]
    rows = [(voice_clip(sample, 6.0), sample["meta"]["speaker"])
            for path in shard_paths(run / "data", "train") for sample in read_shard(path)]
    assert head["clips"] == len(rows) and head["speakers"] == len({name for _, name in rows}) >= 10
    waves = torch.from_numpy(np.stack([clip["wave"] for clip, _ in rows]))
    model = load_voice_encoder(run / "voice").eval()
    assert isinstance(model, SpeakerVoiceEncoder) and not model.config.finetune
    with torch.no_grad():
        vectors = SpeakerEncoder.pretrained("cpu").embed_waves(waves).numpy()
        predicted = model(waves).numpy()
    fitted = fit_ridge(vectors, np.stack([clip["feature"] for clip, _ in rows]), [name for _, name in rows], seed=0)
    assert fitted.summary() == {k: head[k] for k in fitted.summary()}
    np.testing.assert_allclose(predicted, fitted(vectors), rtol=1e-3, atol=1e-3)
