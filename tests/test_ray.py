"""The Ray engine on a local Ray instance of 2 CPUs. `prepare --engine ray`: the same shards as the local
engine (names, sample keys, splits, contents), and a worker killed mid-shard retried with nothing lost or
duplicated. `download --engine ray`: the same files as the threads, the hosts' turns shared by the tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import TALK
from speech2face.cli import main
from speech2face.data import PrepareSettings, manifests, prepare
from speech2face.data.download import DownloadSettings, download
from speech2face.synth import SPEAKER_PATTERN
from test_prepare import samples_of

try:
    import ray
except ImportError:
    if os.environ.get("CI"):  # CI must run these: tools/setup.sh installs the [scale] extra
        pytest.fail("Ray is not installed: pip install 'speech2face[scale]'", pytrace=False)
    pytest.skip("the Ray engine needs pip install 'speech2face[scale]'", allow_module_level=True)

SETTINGS = PrepareSettings(shard_size=4, val=0.25, test=0.25, split_seed=3)  # the `prepared` fixture's


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of 2 CPUs that `prepare` joins (it starts none of its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
    yield
    ray.shutdown()


def shard_tasks() -> list[int]:
    """Process ids of Ray workers running a shard now (Ray names a busy worker after its task)."""
    busy = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::process_shard"):
                busy.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return busy


def assert_same_shards(out: Path, reference: Path) -> None:
    """Shard names, the keys in each shard, splits and sample contents equal the reference run's."""
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == sorted(p.name for p in (reference / "shards").iterdir())  # no temp file left either
    ours, theirs = samples_of(out), samples_of(reference)
    assert {k: s["shard"] for k, s in ours.items()} == {k: s["shard"] for k, s in theirs.items()}
    for key, sample in ours.items():
        assert sample["audio"] == theirs[key]["audio"] and sample["meta"] == theirs[key]["meta"]
        assert np.array_equal(sample["feature"], theirs[key]["feature"])
    assert json.loads((out / "splits.json").read_text()) == json.loads((reference / "splits.json").read_text())
    assert (out / "failures.jsonl").read_text() == (reference / "failures.jsonl").read_text()


def test_ray_writes_the_local_engines_shards(local_ray: None, prepared: Path, tmp_path: Path) -> None:
    world = prepared.parent / "world"
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    summary = prepare(segments, tmp_path / "ray", SETTINGS, engine="ray", progress=False, synthetic=True)
    assert summary["segments_ok"] == len(segments) and summary["shards"] >= 4
    assert_same_shards(tmp_path / "ray", prepared)
    # a rerun finds every shard done and asks Ray for nothing
    began = time.perf_counter()
    assert prepare(segments, tmp_path / "ray", SETTINGS, engine="ray", progress=False, synthetic=True)["shards"] \
        == summary["shards"]
    assert time.perf_counter() - began < 5


def test_a_worker_killed_mid_shard_is_retried_and_nothing_is_lost_or_doubled(
        local_ray: None, prepared: Path, tmp_path: Path) -> None:
    world = prepared.parent / "world"
    segments = manifests.read_avspeech(world / "avspeech.csv", world / "videos", SPEAKER_PATTERN)
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_busy_worker() -> None:
        seen: dict[int, float] = {}
        while not stop.is_set() and not killed:
            for pid in shard_tasks():
                if time.monotonic() - seen.setdefault(pid, time.monotonic()) > 0.5:  # well into its shard
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    try:
        summary = prepare(segments, tmp_path / "ray", SETTINGS, engine="ray", progress=False, synthetic=True)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1  # a worker died holding a shard...
    assert summary["segments_ok"] == len(segments)  # ...and its shard was done again, once
    assert_same_shards(tmp_path / "ray", prepared)


def test_cli_engine_options(local_ray: None, prepared: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    world = prepared.parent / "world"
    base = ["prepare", "--avspeech", str(world / "avspeech.csv"), "--videos", str(world / "videos"),
            "--out", str(tmp_path / "cli"), "--shard-size", "4", "--val", "0.25", "--test", "0.25",
            "--split-seed", "3", "-q"]
    assert main([*base, "--engine", "ray", "--device", "auto"]) == 0  # no GPU in this cluster: the CPU
    assert "16 of 16 segments ok" in capsys.readouterr().out
    assert_same_shards(tmp_path / "cli", prepared)
    assert main([*base, "--address", "auto"]) == 2
    assert "--address and --gpus-per-task need --engine ray" in capsys.readouterr().err
    # a cluster that is not there: one line in seconds (Ray alone retries for minutes)
    elsewhere = [str(tmp_path / "unreached") if arg == str(tmp_path / "cli") else arg for arg in base]
    run = subprocess.run([sys.executable, "-m", "speech2face", *elsewhere, "--engine", "ray", "--address",
                          "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith(
        "s2f prepare: error: no Ray cluster answers at 127.0.0.1:1")
    with pytest.raises(SystemExit, match="2"):
        main([*base, "--engine", "spark"])
    assert "invalid choice: 'spark'" in capsys.readouterr().err


def test_download_on_ray_writes_what_the_threads_write_and_shares_the_turns(
        local_ray: None, site: tuple[str, object, Path], tmp_path: Path) -> None:
    template, _, _ = site
    csv_path = tmp_path / "avspeech.csv"
    csv_path.write_text(f"{TALK},1.0,4.0,0.5,0.5\n{TALK},12.0,15.0,0.5,0.5\nsyn00000_00,0.5,2.5,0.5,0.5\n"
                        "syn00000_01,0.5,3.0,0.5,0.5\nnot_there,0,2,0.5,0.5\n")
    settings = DownloadSettings(url_template=template, sleep=0.4, retries=0)
    threads = download(csv_path, tmp_path / "threads", settings, progress=False)
    began = time.monotonic()
    on_ray = download(csv_path, tmp_path / "ray", settings, progress=False, engine="ray")
    elapsed = time.monotonic() - began
    assert on_ray == threads and on_ray["files"] == 4 and on_ray["failed"] == 1
    names = sorted(p.name for p in (tmp_path / "threads").glob("*.mp4"))
    assert names == sorted(p.name for p in (tmp_path / "ray").glob("*.mp4"))
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "threads" / name).read_bytes()
    # every video takes two turns on the one host (look-up, then fetch), 0.4 s apart whichever task asks:
    # 4 videos (and the missing one's look-up) cannot finish in under 8 turns
    assert elapsed > 8 * 0.4
    failure = json.loads((tmp_path / "ray" / "download_failures.jsonl").read_text())
    assert failure["ytid"] == "not_there" and "404" in failure["reason"]
