"""Training the voice encoder: the loss by hand, overfitting, DDP == one process, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import speech2face as s2f
from speech2face.cli import main
from speech2face.losses import distillation, voice_losses
from speech2face.models import VoiceEncoder, VoiceEncoderConfig
from speech2face.train import VoiceTraining, train_voice


def test_each_loss_term_against_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    true, predicted = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    w, b = rng.normal(size=(4, 5)), rng.normal(size=4)  # the decoder's first layer
    c = rng.normal(size=(6, 5))  # the classifier
    first = torch.nn.Linear(5, 4)
    classifier = torch.nn.Linear(5, 6, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(w).float())
        first.bias.copy_(torch.from_numpy(b).float())
        classifier.weight.copy_(torch.from_numpy(c).float())
    as_tensor = lambda x: torch.from_numpy(x).float()  # noqa: E731
    with torch.no_grad():  # values only here; gradients are tested by the training tests
        losses = voice_losses(as_tensor(predicted), as_tensor(true), first, classifier, norm_weight=0.025,
                              distill_weight=200, temperature=2.0)

    decoder_term = np.abs((true @ w.T + b) - (predicted @ w.T + b)).sum(axis=1).mean()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    norm_term = ((unit(true) - unit(predicted)) ** 2).sum(axis=1).mean()

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(true @ c.T / 2), softmax(predicted @ c.T / 2)
    distill_term = -(p * np.log(q)).sum(axis=1).mean()
    assert float(losses["decoder"]) == pytest.approx(decoder_term, rel=1e-5)
    assert float(losses["norm"]) == pytest.approx(norm_term, rel=1e-5)
    assert float(losses["distill"]) == pytest.approx(distill_term, rel=1e-5)
    assert float(losses["total"]) == pytest.approx(decoder_term + 0.025 * norm_term + 200 * distill_term, rel=1e-5)
    with torch.no_grad():
        without = voice_losses(as_tensor(predicted), as_tensor(true), first, None)
    assert "distill" not in without
    assert float(without["total"]) == pytest.approx(decoder_term + 0.025 * norm_term, rel=1e-5)
    same = distillation(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.0]]))
    entropy = -(softmax(np.array([[0.5, 1.0]])) * np.log(softmax(np.array([[0.5, 1.0]])))).sum()
    assert float(same) == pytest.approx(entropy, rel=1e-6)  # cross-entropy with itself = entropy


def test_a_tiny_batch_overfits() -> None:
    torch.manual_seed(0)
    model = VoiceEncoder(VoiceEncoderConfig.small(output_dim=16))
    first = torch.nn.Linear(16, 32).requires_grad_(False)
    spec = s2f.spectrogram(torch.randn(4, 16000 * 2) * 0.1)
    target = torch.randn(4, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-4)
    history = []
    for _ in range(150):
        loss = voice_losses(model(spec), target, first, None)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.1 * history[0], (history[0], history[-1])


def test_training_on_shards_writes_a_run(prepared: Path, decoder_run: Path, tmp_path: Path) -> None:
    settings = VoiceTraining(steps=6, batch_size=4, log_every=2, eval_every=3, checkpoint_every=3)
    result = train_voice(prepared, decoder_run, tmp_path / "voice", settings, progress=False)
    held = result["held_out"]
    assert held["pool"] >= 4 and held["chance_R@1"] == pytest.approx(1 / held["pool"])
    assert result["distill"].startswith("fitted")  # dlib features: no teacher classifier
    model = VoiceEncoder.from_pretrained(tmp_path / "voice")
    assert model.config.output_dim == 128
    assert (tmp_path / "voice" / "best" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (tmp_path / "voice" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]
    with pytest.raises(s2f.DataError, match="no identity classifier"):
        train_voice(prepared, decoder_run, tmp_path / "v2", VoiceTraining(steps=1, distill="teacher"), progress=False)


def test_the_speaker_backbone_learns_its_head_and_only_then_itself(speaker_model: Path, prepared: Path,
                                                                     decoder_run: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Frozen: the pretrained speaker encoder's weights leave training unchanged; fine-tuned: they move. The
    folder names the model type and backbone and loads strictly as any voice model."""
    from speech2face.models import SpeakerVoiceEncoder, load_voice_encoder
    from speech2face.voice.speakers import SpeakerEncoder

    pretrained = SpeakerEncoder.pretrained("cpu").state_dict()
    assert main(["train", "--data", str(prepared), "--decoder", str(decoder_run), "--out", str(tmp_path / "frozen"),
                 "--voice-backbone", "speaker", "--steps", "3", "--batch-size", "4", "--distill", "none", "-q"]) == 0
    assert "(speaker backbone)" in capsys.readouterr().out
    for run, finetune in ((tmp_path / "frozen", False), (speaker_model.parent / "voice", True)):
        model = load_voice_encoder(run)
        assert isinstance(model, SpeakerVoiceEncoder) and model.config.finetune is finetune
        moved = [name for name, value in model.backbone.state_dict().items()
                 if not torch.equal(value, pretrained[name])]
        assert bool(moved) is finetune, moved
        header = json.loads((run / "config.json").read_text())
        assert header["model_type"] == "speaker_voice_encoder" and header["config"]["backbone"] == "resemblyzer-ge2e"
        assert json.loads((run / "training.json").read_text())["voice_backbone"] == "speaker"
    assert main(["train", "--data", str(prepared), "--decoder", str(decoder_run), "--out", str(tmp_path / "bad"),
                 "--finetune-backbone", "--steps", "1"]) == 2
    assert "--finetune-backbone needs --voice-backbone speaker" in capsys.readouterr().err
    assert main(["train", "--data", str(prepared), "--decoder", str(decoder_run), "--out", str(tmp_path / "bad2"),
                 "--fit-head", "--steps", "0"]) == 2
    assert "--fit-head needs --voice-backbone speaker" in capsys.readouterr().err
    # the fixture's world has 4 training speakers: too few to choose a ridge strength by cross-validation
    assert main(["train", "--data", str(prepared), "--decoder", str(decoder_run), "--out", str(tmp_path / "bad3"),
                 "--voice-backbone", "speaker", "--fit-head", "--steps", "0", "-q"]) == 2
    error = capsys.readouterr().err
    assert "--fit-head: a closed-form head needs at least 10 training speakers" in error and "Traceback" not in error
    assert not (tmp_path / "bad3" / "model.safetensors").exists()


def losses_by_step(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def training_command(verb: str, prepared: Path, decoder_run: Path) -> list[str]:
    """The verb's arguments that every loop test shares: both objectives run through the same loop."""
    specific = ["--decoder", str(decoder_run), "--distill", "none"] if verb == "train" else []
    return [verb, "--data", str(prepared), "--device", "cpu", "-q", *specific]


@pytest.mark.slow
@pytest.mark.parametrize(("verb", "port"), [("train", 29531), ("train-decoder", 29533)])
def test_two_processes_under_torchrun_match_one(verb: str, port: int, prepared: Path, decoder_run: Path,
                                                tmp_path: Path) -> None:
    common = ["--steps", "3", "--batch-size", "4", "--shuffle-buffer", "0", "--log-every", "1", "--lr", "1e-5",
              "--eval-every", "100"]
    base = training_command(verb, prepared, decoder_run) + common
    single = subprocess.run([sys.executable, "-m", "speech2face", *base, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                "-m", "speech2face", *base, "--out", str(tmp_path / "two")]
    double = subprocess.run(torchrun, capture_output=True, text=True, env=environment)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = losses_by_step(tmp_path / "one"), losses_by_step(tmp_path / "two")
    assert sorted(one) == sorted(two) == [1, 2, 3]
    # step 1: the same global batch through global batch norm gives the same loss (summation order aside)
    assert two[1] == pytest.approx(one[1], rel=1e-3), (one, two)
    # later steps follow averaged gradients. Adam's first updates are ~sign(gradient) * lr, which turns
    # float-order differences in tiny gradients into whole-lr steps; a small lr keeps those steps (and so the
    # losses they move) small, while a wrong gradient average would still show (exact: the test below)
    for step in (2, 3):
        assert two[step] == pytest.approx(one[step], rel=0.01), (step, one, two)
    training = json.loads((tmp_path / "two" / "training.json").read_text())
    assert training["world_size"] == 2 and training["batch_size"] == 4


@pytest.mark.slow
def test_ddp_gradients_equal_one_process_on_the_global_batch(tmp_path: Path) -> None:
    from ddp_gradients import gradients

    script = Path(__file__).parent / "ddp_gradients.py"
    environment = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parent)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29532", str(script), str(tmp_path / "grads.pt")], capture_output=True, text=True,
                         env=environment)
    assert run.returncode == 0, run.stderr[-3000:]
    two = torch.load(tmp_path / "grads.pt", weights_only=True)
    one = gradients(world=False)
    assert set(one) == set(two)
    for name in one:  # averaged, not summed; batch-norm statistics over both halves
        scale = one[name].abs().max().clamp_min(1e-8)
        assert (two[name] - one[name]).abs().max() / scale < 1e-6, name


@pytest.mark.slow
@pytest.mark.parametrize(("verb", "steps"), [("train", 40), ("train-decoder", 400)])
def test_sigkill_then_resume_continues_from_the_last_checkpoint(verb: str, steps: int, prepared: Path,
                                                                decoder_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "speech2face", *training_command(verb, prepared, decoder_run), "--out", str(out),
            "--steps", str(steps), "--batch-size", "4", "--log-every", "1", "--checkpoint-every", "4",
            "--eval-every", "1000"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if (out / "metrics.jsonl").is_file() and len(losses_by_step(out)) >= 10:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = torch.load(out / "training_state.pt", weights_only=True)
    checkpoint = int(state["step"])
    assert {"model", "optimizer", "rng", "best", "extras"} <= set(state)  # the same state for every objective
    logged_before = len((out / "metrics.jsonl").read_text().splitlines())
    assert checkpoint % 4 == 0 and checkpoint >= 4
    finished = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][logged_before:]
    steps_logged = [r["step"] for r in rows if "loss" in r]
    assert steps_logged[0] == checkpoint + 1 and steps_logged[-1] == steps
    assert steps_logged == list(range(checkpoint + 1, steps + 1))


def test_resume_restores_the_random_state(prepared: Path, tmp_path: Path) -> None:
    """A resumed decoder run continues from the checkpoint's random state, whatever the process drew before."""
    import shutil

    from speech2face.train import DecoderTraining, train_decoder

    settings = DecoderTraining(steps=2, batch_size=4, checkpoint_every=2, eval_every=100, log_every=1)
    train_decoder(prepared, tmp_path / "run", settings, progress=False)
    longer = DecoderTraining(steps=3, batch_size=4, eval_every=100, log_every=1)
    after = []
    for seed in (1, 2):  # two resumes of the same checkpoint from different prior random states
        shutil.copytree(tmp_path / "run", tmp_path / f"resumed{seed}")
        torch.manual_seed(seed)
        train_decoder(prepared, tmp_path / f"resumed{seed}", longer, resume=True, progress=False)
        after.append(torch.get_rng_state())
    assert torch.equal(after[0], after[1])
    assert losses_by_step(tmp_path / "resumed1")[3] == losses_by_step(tmp_path / "resumed2")[3]


def test_cli_errors(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(prepared), "--decoder", str(tmp_path / "none"), "--out", str(tmp_path / "x"),
                 "--steps", "1"]) == 2
    assert "error" in capsys.readouterr().err


def test_evaluate_writes_metrics_and_a_labelled_report(prepared: Path, decoder_run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    train_voice(prepared, decoder_run, tmp_path / "voice", VoiceTraining(steps=2, batch_size=4, eval_every=2),
                progress=False)
    labels = prepared.parent / "world" / "attributes.csv"
    assert main(["evaluate", "--model", str(tmp_path / "voice"), "--data", str(prepared), "--out",
                 str(tmp_path / "report"), "--labels", str(labels)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC DATA" in printed and "R@1" in printed
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    cos = metrics["retrieval"]["cos"]
    assert metrics["synthetic"] is True and cos["pool"] == metrics["protocol"]["speakers"] >= 2
    assert cos["chance_R@1"] == pytest.approx(1 / cos["pool"])
    assert {"voice", "shuffled"} <= set(metrics["feature_similarity"])
    assert "same_masculinity" in metrics["matching_1_of_2"] and "nasal_index" in metrics["craniofacial"]
    for name in ("masculinity", "age", "size"):
        result = metrics["demographics"][name]
        assert 0 <= result["voice"]["agreement"] <= 1 and np.sum(result["voice"]["confusion"]) == cos["pool"]
        assert result["class_names"] == ["<= 0", "> 0"] or len(result["class_names"]) == 2
    scorer, judge = metrics["scorer"], metrics["judge"]  # networks that took no part in training
    assert scorer["network"] == "facenet" and scorer["dim"] == 512 and scorer["pool"] == cos["pool"]
    for key in ("voice", "upper_bound"):
        assert scorer[key]["chance_R@1"] == pytest.approx(1 / cos["pool"]) and -1 <= scorer[key]["cosine"] <= 1
    assert judge["network"].startswith("Cydral") and judge["speakers"] == cos["pool"]
    assert np.sum(judge["sex"]["voice"]["confusion"]) == cos["pool"] and 0 <= judge["sex"]["voice"]["chance"] <= 1
    assert judge["judge_accuracy"]["label"] == "sex" and judge["judge_accuracy"]["faces"] == cos["pool"]
    assert "scorer facenet" in printed and "judge (Cydral" in printed
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Demographic agreement" in page and "age:" in printed
    assert "Independent scorer: facenet" in page and "Judge: Cydral" in page
    assert (tmp_path / "report" / "gallery.png").stat().st_size > 0
    assert "SYNTHETIC DATA" in page
    assert page.count("data:image/png;base64,") == 3 + 3 * min(8, cos["pool"])  # plots + gallery rows
