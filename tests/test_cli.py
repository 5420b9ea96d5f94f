"""The s2f command as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def s2f(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "speech2face", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_verbs() -> None:
    result = s2f("--help")
    assert result.returncode == 0
    assert "info" in result.stdout
    assert "usage: s2f" in result.stdout


def test_info_prints_both_configs() -> None:
    result = s2f("info")
    assert result.returncode == 0, result.stderr
    assert "(2, 598, 257)" in result.stdout
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()}
    assert lines["paper"][1] == "162,743,040"
    assert 100 < float(lines["paper"][2]) < 300  # GFLOPs forward per 6 s clip
    assert float(lines["small"][2]) < 5


def test_info_json_is_machine_readable() -> None:
    result = s2f("info", "--json", "--config", "small", "--seconds", "3")
    data = json.loads(result.stdout)
    (row,) = data["voice_encoders"]
    assert row["config"] == "small" and row["frames"] == 298
    assert row["train_flops"] > 2 * row["forward_flops"]


@pytest.mark.parametrize(("args", "message"), [
    (("info", "--seconds", "0.2"), "shorter than the paper encoder's minimum"),
    (("info", "--config", "huge"), "invalid choice"),
    ((), "usage: s2f"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = s2f(*args)
    assert result.returncode == 2
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_submodules_load_on_first_use() -> None:
    import subprocess
    import sys

    code = ("import sys, speech2face as s2f; assert 'dlib' not in sys.modules; "
            "assert callable(s2f.evaluate.retrieval) and callable(s2f.faces.detect); "
            "assert s2f.models.FaceDecoder.__name__ == 'FaceDecoder'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


BAD_OUTPUTS = {"a file where a folder should be": "blocker/sub", "a folder that cannot be made": "/proc/s2f-x/y"}


@pytest.mark.parametrize("where", list(BAD_OUTPUTS))
def test_an_output_the_system_refuses_is_one_line(where: str, tmp_path, tiny_model, prepared, spoken,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The operating system's refusal (NotADirectoryError, FileNotFoundError, PermissionError...) names the
    path and the cause in one line, exit 2, for every verb that writes; nothing is left half-written."""
    from speech2face.cli import main

    (tmp_path / "blocker").write_text("a file")
    bad = BAD_OUTPUTS[where] if BAD_OUTPUTS[where].startswith("/") else str(tmp_path / BAD_OUTPUTS[where])
    commands = {
        "synth": ["synth", "--out", bad, "--identities", "1", "--clips", "1", "--voices", "espeak", "-q"],
        "predict": ["predict", str(spoken["short"]), "--model", str(tiny_model), "-o", bad, "-q"],
        "export": ["export", "--model", str(tiny_model), "--format", "tar", "--out", f"{bad}/m.tar.gz"],
        "train-decoder": ["train-decoder", "--data", str(prepared), "--out", bad, "--steps", "1", "-q"],
    }
    for verb, argv in commands.items():
        assert main(argv) == 2, verb
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"s2f {verb}: error: ") and "\n" not in error, (verb, error)
        assert "/proc/s2f-x" in error or "blocker" in error, (verb, error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
