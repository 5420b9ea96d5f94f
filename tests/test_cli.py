"""The s2f command as a user runs it: a real subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def test_the_old_size_flag_still_works_and_says_it_is_deprecated() -> None:
    """--config was the size knob's name; "config" now means config.json alone. The old flag keeps working."""
    result = s2f("info", "--json", "--config", "small", "--seconds", "3")
    assert result.returncode == 0, result.stderr
    assert [row["size"] for row in json.loads(result.stdout)["voice_encoders"]] == ["small"]
    assert "--config is deprecated; use --size" in result.stderr
    from speech2face.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--decoder", "r", "--out", "o", "--config", "paper"])
    assert args.size == "paper"
    assert "--config" not in s2f("train", "--help").stdout and "--size {small,paper}" in s2f("train", "--help").stdout


def test_info_json_is_machine_readable() -> None:
    result = s2f("info", "--json", "--size", "small", "--seconds", "3")
    data = json.loads(result.stdout)
    (row,) = data["voice_encoders"]
    assert row["size"] == "small" and row["frames"] == 298
    assert row["train_flops"] > 2 * row["forward_flops"]


@pytest.mark.parametrize(("args", "message"), [
    (("info", "--seconds", "0.2"), "shorter than the paper encoder's minimum"),
    (("info", "--size", "huge"), "invalid choice"),
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


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 256 KB tmpfs, filled: every write ends in ENOSPC. Needs mount (root with CAP_SYS_ADMIN)."""
    import shutil
    import subprocess

    folder = tmp_path_factory.mktemp("full")
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                                                         str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with (folder / "filler").open("wb") as handle, contextlib.suppress(OSError):
            handle.write(b"\0" * (1 << 20))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


BAD_OUTPUTS = {"a file where a folder should be": "blocker/sub", "a folder that cannot be made": "/proc/s2f-x/y",
               "a read-only file system": "/sys/s2f-x", "a full disk": "FULL/sub"}


def verbs_writing_to(out: str, tiny_model: Path, prepared: Path, decoder_run: Path, spoken: dict[str, Path],
                     ) -> dict[str, list[str]]:
    """Each verb that writes, its output at `out`."""
    return {
        "synth": ["synth", "--out", out, "--identities", "1", "--clips", "1", "--voices", "espeak", "-q"],
        "prepare": ["prepare", "--avspeech", str(prepared.parent / "world" / "avspeech.csv"), "--videos",
                    str(prepared.parent / "world" / "videos"), "--out", out, "-q"],
        "train-decoder": ["train-decoder", "--data", str(prepared), "--out", out, "--steps", "1", "-q"],
        "train": ["train", "--data", str(prepared), "--decoder", str(decoder_run), "--out", out, "--steps", "1",
                  "-q"],
        "evaluate": ["evaluate", "--model", str(tiny_model.parent / "voice"), "--data", str(prepared), "--out", out,
                     "--no-judge", "--scorer", "none"],
        "predict": ["predict", str(spoken["short"]), "--model", str(tiny_model), "-o", out, "-q"],
        "examples": ["examples", "--model", str(tiny_model), "-o", out, "-q"],
        "export": ["export", "--model", str(tiny_model), "--format", "tar", "--out", f"{out}/m.tar.gz"],
        "demo": ["demo", "--quick", "--out", out, "-q"],
    }


@pytest.mark.parametrize("where", list(BAD_OUTPUTS))
def test_an_output_the_system_refuses_is_one_line(where: str, tmp_path: Path, tiny_model: Path, prepared: Path,
                                                  decoder_run: Path, spoken: dict[str, Path],
                                                  request: pytest.FixtureRequest,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The operating system's refusal (NotADirectoryError, FileNotFoundError, PermissionError, ENOSPC...) names
    the path and the cause in one line, exit 2, for every verb that writes; no file is left half-written."""
    from speech2face.cli import main

    (tmp_path / "blocker").write_text("a file")
    bad = BAD_OUTPUTS[where]
    if bad.startswith("FULL"):
        bad = bad.replace("FULL", str(request.getfixturevalue("full_disk")))
    elif not bad.startswith("/"):
        bad = str(tmp_path / bad)
    shown = {"a file where a folder should be": "blocker", "a folder that cannot be made": "/proc/s2f-x",
             "a read-only file system": "/sys/s2f-x", "a full disk": str(Path(bad).parent)}[where]
    for verb, argv in verbs_writing_to(bad, tiny_model, prepared, decoder_run, spoken).items():
        assert main(argv) == 2, verb
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"s2f {verb}: error: ") and "\n" not in error, (verb, error)
        assert shown in error, (verb, error)
        assert "No space left on device" in error or where != "a full disk", (verb, error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    if where == "a full disk":  # folders may have been made; no file but the filler was written
        assert [p.name for p in Path(bad).parent.rglob("*") if p.is_file()] == ["filler"]


def test_an_input_that_cannot_be_read_is_one_line(tmp_path: Path, tiny_model: Path, prepared: Path,
                                                  decoder_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing inputs, and a folder where a file should be (or a file where a folder should be), per verb: one
    line naming the path, exit 2 (predict, a batch job: the input recorded, exit 1). Tests run as root, so a
    permission error cannot be made here; it takes the same path (an OSError) as these."""
    from speech2face.cli import main

    folder, file = tmp_path / "a-folder", tmp_path / "a-file"
    folder.mkdir()
    file.write_text("not what is wanted")
    out = str(tmp_path / "out")
    cases = {
        "synth": (["synth", "--out", out, "--identities", "1", "--voices", "espeak", "--faces", "portraits",
                   "--portrait", f"{folder}:female:30", "-q"], folder),
        "prepare": (["prepare", "--avspeech", str(folder), "--videos", str(folder), "--out", out, "-q"], folder),
        "train-decoder": (["train-decoder", "--data", str(file), "--out", out, "--steps", "1", "-q"], file),
        "train": (["train", "--data", str(prepared), "--decoder", str(file), "--out", out, "--steps", "1", "-q"],
                  file),
        "evaluate": (["evaluate", "--model", str(tiny_model.parent / "voice"), "--data", str(prepared), "--out", out,
                      "--labels", str(folder)], folder),
        "predict": (["predict", str(folder), str(tmp_path / "missing.wav"), "--model", str(tiny_model), "-o", out,
                     "-q"], folder),
        "examples": (["examples", "--model", str(tmp_path / "missing"), "-o", out, "-q"], tmp_path / "missing"),
        "export": (["export", "--model", str(file), "--format", "tar", "--out", f"{out}/m.tar.gz"], file),
        "serve": (["serve", "--model", str(folder)], folder),
    }
    for verb, (argv, named) in cases.items():
        assert main(argv) == (1 if verb == "predict" else 2), verb
        error = capsys.readouterr().err.strip()
        lines = error.splitlines()
        assert all(line.startswith(f"s2f {verb}: error: ") for line in lines) and str(named) in error, (verb, error)
        assert len(lines) == (2 if verb == "predict" else 1), (verb, error)


def test_bad_face_and_voice_sources_are_one_line(tmp_path: Path) -> None:
    """The options of the real-faces and real-voices worlds, as a user types them (a real `s2f` process): a photo
    collection that is neither a folder nor a name, labels that are missing or wrong, a speaker set that does not
    exist, a voice cache that cannot be written. One line naming the cause, exit 2, no world folder left."""
    labels = tmp_path / "labels.csv"
    labels.write_text("image,sex\n000001.jpg,x\n")
    out = str(tmp_path / "world")
    cases = [
        (("synth", "--out", out, "--faces", "no-such-collection", "-q"), {}, "no such folder of photos, nor a"),
        (("prepare", "--images", "no-such-collection", "--out", out), {}, "no such folder of photos, nor a"),
        (("synth", "--out", out, "--face-labels", str(tmp_path / "none.csv"), "-q"), {}, "unreadable labels"),
        (("synth", "--out", out, "--face-labels", str(labels), "--identities", "2", "-q"), {},
         "sex 'x' is not female/male"),
        (("prepare", "--images", "celeba-999", "--labels", str(labels), "--out", out), {}, "sex 'x' is not"),
        (("synth", "--out", out, "--speakers", "nobody"), {}, "invalid choice: 'nobody'"),
        (("synth", "--out", out, "--identities", "2", "-q"), {"S2F_VOICES": "/dev/null/voices"},
         "cannot keep the synthesised voices in /dev/null/voices"),
    ]
    for args, env, message in cases:
        result = subprocess.run([sys.executable, "-m", "speech2face", *args], capture_output=True, text=True,
                                timeout=300, env={**os.environ, **env})
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        assert len(errors) == 1 and message in errors[0], (args, result.stderr)
        assert not Path(out).exists(), args
