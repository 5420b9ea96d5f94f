"""Voice encoder shapes, variable length, training behaviour, and model files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import speech2face as s2f
from speech2face.models import VoiceEncoder, VoiceEncoderConfig
from speech2face.models.pretrained import CONFIG_FILE, WEIGHTS_FILE


@pytest.fixture
def small() -> VoiceEncoder:
    torch.manual_seed(0)
    return VoiceEncoder(VoiceEncoderConfig.small())


def test_paper_config_follows_table_1() -> None:
    config = VoiceEncoderConfig.paper()
    assert config.channels == (64, 64, 128, 128, 128, 256, 512, 512, 512)
    assert config.strides[-2:] == (2, 2) and set(config.strides[:-2]) == {1}
    assert config.pool_after == (2, 3, 4, 5) and config.pool_freq == 1  # pool along time only
    # 598 frames -> 299 -> 149 -> 74 -> 37 (pools) -> 18 -> 9 (stride 2); 257 bins -> 128 -> 64.
    assert config.output_frames(598) == 9
    assert config.output_freq == 64
    with torch.device("meta"):
        model = VoiceEncoder(config)
    assert model.fc1.in_features == 512 * 64 and model.fc1.out_features == 4096
    assert model.fc2.out_features == 4096
    assert 1.5e8 < model.num_parameters() < 1.7e8
    assert 1e11 < model.flops() < 3e11  # the paper's network: on the order of 1e11 per 6 s clip


def test_paper_model_runs_on_3_and_6_seconds() -> None:
    torch.manual_seed(0)
    model = VoiceEncoder(VoiceEncoderConfig.paper()).eval()
    with torch.no_grad():
        for frames in (298, 598):
            out = model(torch.randn(1, 2, frames, 257))
            assert out.shape == (1, 4096)
            assert torch.isfinite(out).all()


def test_conv_stack_shapes_match_the_config(small: VoiceEncoder) -> None:
    for frames in (64, 100, 298, 598, 1000):
        features = small.convs(torch.randn(2, 2, frames, 257))
        assert features.shape == (2, 256, small.config.output_frames(frames), small.config.output_freq)


def test_variable_length_and_minimum(small: VoiceEncoder) -> None:
    small.eval()
    config = small.config
    assert small(torch.randn(1, 2, config.min_frames, 257)).shape == (1, 128)
    with pytest.raises(ValueError, match="shorter than the encoder's minimum"):
        small(torch.randn(1, 2, config.min_frames - 1, 257))
    with pytest.raises(ValueError, match=r"takes \(B, 2, T, 257\)"):
        small(torch.randn(1, 257, 598, 2))


def test_batch_items_are_independent_in_eval_mode(small: VoiceEncoder) -> None:
    small.eval()
    batch = torch.randn(3, 2, 300, 257)
    together = small(batch)
    alone = torch.cat([small(batch[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_small_encoder_fits_a_few_targets(small: VoiceEncoder) -> None:
    torch.manual_seed(1)
    spec = s2f.spectrogram(torch.randn(4, 16_000) * 0.1)
    targets = torch.randn(4, 128)
    optimiser = torch.optim.Adam(small.parameters(), lr=1e-3)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(small(spec), targets)
        first = loss.item() if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * first


def test_config_round_trips_and_validates() -> None:
    for config in (VoiceEncoderConfig.paper(), VoiceEncoderConfig.small(output_dim=64)):
        assert VoiceEncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="one stride per conv"):
        VoiceEncoderConfig(channels=(8, 8), strides=(1,))
    with pytest.raises(ValueError, match="unknown VoiceEncoderConfig settings"):
        VoiceEncoderConfig.from_dict({"widths": [1]})
    with pytest.raises(ValueError, match="unknown voice encoder config"):
        VoiceEncoderConfig.named("huge")
    with pytest.raises(ValueError, match="vanish"):
        VoiceEncoderConfig(channels=(8,) * 9, strides=(2,) * 9, pool_after=())


def test_save_and_load_round_trip(small: VoiceEncoder, tmp_path: Path) -> None:
    small.train()
    small(torch.randn(4, 2, 200, 257))  # move the BatchNorm running statistics off their defaults
    small.eval()
    small.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = VoiceEncoder.from_pretrained(tmp_path / "run").eval()
    assert loaded.config == small.config
    spec = torch.randn(2, 2, 300, 257)
    torch.testing.assert_close(loaded(spec), small(spec), rtol=0, atol=0)
    header = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert header["model_type"] == "voice_encoder"
    assert header["config"]["channels"] == list(small.config.channels)


def test_weights_that_do_not_fit_the_config_fail_clearly(small: VoiceEncoder, tmp_path: Path) -> None:
    run = small.save_pretrained(tmp_path / "run")
    header = json.loads((run / CONFIG_FILE).read_text())
    header["config"]["hidden_dim"] = 256
    (run / CONFIG_FILE).write_text(json.dumps(header))
    with pytest.raises(s2f.ModelError, match=r"do not fit config.json: .*wrong shape: fc1.bias is \(512,\)"):
        VoiceEncoder.from_pretrained(run)

    run = small.save_pretrained(tmp_path / "run2")
    state = load_file(str(run / WEIGHTS_FILE))
    del state["fc2.weight"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(run / WEIGHTS_FILE))
    with pytest.raises(s2f.ModelError, match=r"1 missing: fc2.weight, 1 unexpected: extra.weight"):
        VoiceEncoder.from_pretrained(run)


@pytest.mark.parametrize(("damage", "message"), [
    ("no directory", "no such model directory"),
    ("no config", "no config.json"),
    ("bad json", "unreadable"),
    ("other model", "holds a 'face_decoder' model"),
    ("future format", "newer than this"),
    ("bad config", "invalid config"),
    ("no weights", "no model.safetensors"),
    ("garbage weights", "unreadable weights"),
])
def test_damaged_model_directories(small: VoiceEncoder, tmp_path: Path, damage: str, message: str) -> None:
    run = small.save_pretrained(tmp_path / "run")
    header = json.loads((run / CONFIG_FILE).read_text())
    if damage == "no directory":
        run = tmp_path / "elsewhere"
    elif damage == "no config":
        (run / CONFIG_FILE).unlink()
    elif damage == "bad json":
        (run / CONFIG_FILE).write_text("{not json")
    elif damage == "other model":
        (run / CONFIG_FILE).write_text(json.dumps({**header, "model_type": "face_decoder"}))
    elif damage == "future format":
        (run / CONFIG_FILE).write_text(json.dumps({**header, "format_version": 99}))
    elif damage == "bad config":
        (run / CONFIG_FILE).write_text(json.dumps({**header, "config": {"channels": [8], "strides": [3]}}))
    elif damage == "no weights":
        (run / WEIGHTS_FILE).unlink()
    elif damage == "garbage weights":
        (run / WEIGHTS_FILE).write_bytes(b"\x07" * 100)
    with pytest.raises(s2f.ModelError, match=message):
        VoiceEncoder.from_pretrained(run)


def test_saving_leaves_no_temporary_files(small: VoiceEncoder, tmp_path: Path) -> None:
    small.save_pretrained(tmp_path)
    small.save_pretrained(tmp_path)  # overwriting works too
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_forward_and_loading(small: VoiceEncoder, tmp_path: Path) -> None:
    small.eval().save_pretrained(tmp_path)
    on_gpu = VoiceEncoder.from_pretrained(tmp_path, map_location="cuda").eval()
    spec = torch.randn(2, 2, 598, 257)
    torch.testing.assert_close(on_gpu(spec.cuda()).cpu(), small(spec), atol=1e-3, rtol=1e-3)
