"""`s2f examples` (what `make demo` runs) with a real model on real recorded voices, and the set-up script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TERMS
from speech2face import load_audio
from speech2face.cli import main
from speech2face.examples import write_examples

ROOT = Path(__file__).resolve().parents[1]


def test_examples_draw_real_voices_and_refuse_silence_and_music(tiny_model: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["examples", "--model", str(tiny_model), "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "refused (as it should be)" in printed and "index.html" in printed and "s2f serve" in printed
    for name in ("carlo", "menardi"):
        assert (out / f"{name}.png").stat().st_size > 0 and f"{name}.png: the judge calls this face" in printed
    assert {p.name for p in out.glob("conversation.speaker*.png")} == {"conversation.speaker1.png",
                                                                       "conversation.speaker2.png"}
    assert not (out / "silence.png").exists() and not (out / "music.png").exists()
    page = (out / "index.html").read_text()
    assert "SYNTHETIC MODEL" in page and page.count("<audio controls") == 5 and page.count("<img") == 4
    assert TINY_TERMS in page and TINY_TERMS in printed  # the data's terms travel with the model
    assert page.count('class="refused"') == 2


def test_examples_are_deterministic_and_the_conversation_is_the_two_voices(tmp_path: Path) -> None:
    first = write_examples(tmp_path / "a")
    second = write_examples(tmp_path / "b")
    assert [e.name for e in first] == ["carlo", "menardi", "conversation", "silence", "music"]
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(first, second, strict=True))
    waves = {e.name: load_audio(e.path) for e in first}
    assert abs(len(waves["conversation"]) - len(waves["carlo"]) - len(waves["menardi"])) <= 3 * 0.4 * 16000 + 2
    assert [e.refused for e in first] == [False, False, False, True, True]


def setup_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "tools" / "setup.sh"), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "TORCH": "torch==2.13.0"}, timeout=300)


def all_system_packages_present() -> bool:
    script = (ROOT / "tools" / "setup.sh").read_text()
    names = " ".join(script.split('APT_REQUIRED="')[1].split('"')[0].split())
    return subprocess.run(f"for p in {names}; do dpkg-query -W -f='${{Status}}' $p 2>/dev/null | "
                          "grep -q 'ok installed' || exit 1; done", shell=True).returncode == 0


@pytest.mark.skipif(not all_system_packages_present(), reason="would install system packages")
def test_setup_checks_only_on_a_second_run_and_fails_in_one_line(tmp_path: Path) -> None:
    bad = setup_script("/no/such/python", str(tmp_path / "venv"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("setup: error: /no/such/python is missing or older than 3.10")
    venv = Path(sys.prefix)
    if not (venv / ".speech2face-setup").is_file():
        pytest.skip("not running inside the environment tools/setup.sh made (make test does)")
    again = setup_script(sys.executable, str(venv))
    assert again.returncode == 0, again.stderr
    assert "python packages: up to date" in again.stdout and "installing" not in again.stdout
