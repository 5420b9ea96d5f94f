"""A recording read a block at a time (`voice/stream.py`): the same samples, the same refusals and the same cuts
as the whole recording decoded at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import speech2face as s2f
from conftest import AUDIO_FORMATS, VIDEO_FORMATS, mutations
from speech2face.voice.audio import BLOCK_SAMPLES, SAMPLE_RATE
from speech2face.voice.stream import Blocks, Collect, Cutter, Recording, Span, Tee, read, stream_audio


def streamed(source: object) -> np.ndarray:
    blocks = list(stream_audio(source))
    assert all(block.size == BLOCK_SAMPLES for block in blocks[:-1]) and 0 < blocks[-1].size <= BLOCK_SAMPLES
    return np.concatenate(blocks)


@pytest.mark.parametrize("name", [*AUDIO_FORMATS, *VIDEO_FORMATS])
def test_a_stream_is_the_recording_load_audio_gives(media: dict[str, Path], name: str) -> None:
    np.testing.assert_array_equal(streamed(media[name]), s2f.load_audio(media[name]))


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2.6-minute 44.1 kHz stereo FLAC of noise: three blocks once resampled."""
    import soundfile

    rng = np.random.default_rng(0)
    rate = 44_100
    path = tmp_path_factory.mktemp("stream") / "long.flac"
    with soundfile.SoundFile(path, "w", rate, 2, format="FLAC", subtype="PCM_16") as out:
        for _ in range(13):
            out.write((rng.standard_normal((12 * rate, 2)) * 0.1).clip(-1, 1))
    return path


def test_a_recording_of_many_blocks_streams_sample_for_sample(long_flac: Path) -> None:
    """A 2.6-minute 44.1 kHz stereo FLAC (resampled and mixed as it is read): the blocks joined are load_audio's
    wave, bit for bit; as bytes, as a file object and as an array too."""
    path, seconds = long_flac, 156
    whole = s2f.load_audio(path)
    assert whole.size == seconds * SAMPLE_RATE > 2 * BLOCK_SAMPLES
    np.testing.assert_array_equal(streamed(path), whole)
    np.testing.assert_array_equal(streamed(path.read_bytes()), whole)
    with path.open("rb") as handle:
        np.testing.assert_array_equal(streamed(handle), whole)
    np.testing.assert_array_equal(streamed(whole), whole)
    recording = Recording(path)
    collected = Collect()
    read(recording, collected)
    read(recording, collected)  # a second pass decodes it again
    np.testing.assert_array_equal(np.concatenate(collected.pieces), np.concatenate([whole, whole]))


BAD = ["missing.wav", "empty.wav", "garbage.wav", "text.mp3", "truncated.wav", "truncated.mp3", "truncated.flac",
       "truncated.ogg", "truncated.opus", "truncated.m4a", "truncated_video.mp4", "corrupt_speech.mp3",
       "corrupt_speech.flac", "silent_video.mp4", "zero_length.wav"]


@pytest.mark.parametrize("name", BAD)
def test_a_stream_refuses_what_load_audio_refuses_in_the_same_words(media: dict[str, Path], name: str) -> None:
    path = media.get(name, media["speech.wav"].parent / name)
    with pytest.raises(s2f.AudioError) as whole:
        s2f.load_audio(path)
    with pytest.raises(s2f.AudioError) as streaming:
        streamed(path)
    assert str(streaming.value) == str(whole.value)


def outcome(read_wave: Callable[[bytes], np.ndarray], data: bytes) -> np.ndarray | str:
    """What reading `data` gives: the wave, or the refusal's words."""
    try:
        return read_wave(data)
    except s2f.AudioError as error:
        return str(error)


def test_damaged_files_stream_as_they_load(media: dict[str, Path]) -> None:
    """The fuzz corpus of four formats: each mutation streams to load_audio's wave, or to its refusal."""
    rng = np.random.default_rng(1)
    outcomes = {"same wave": 0, "same refusal": 0}
    for name in ["speech.wav", "speech.flac", "speech.mp3", "video.mp4"]:
        for _, data in mutations(media[name].read_bytes(), rng):
            whole, streaming = outcome(s2f.load_audio, data), outcome(streamed, data)
            assert type(whole) is type(streaming)
            if isinstance(whole, str):
                assert streaming == whole
                outcomes["same refusal"] += 1
            else:
                np.testing.assert_array_equal(streaming, whole)
                outcomes["same wave"] += 1
    assert outcomes["same wave"] > 0 and outcomes["same refusal"] > 0, outcomes


def test_a_stream_over_the_limit_is_refused(media: dict[str, Path]) -> None:
    with pytest.raises(s2f.AudioError, match=r"over the limit of 1 s \(--max-seconds\)"):
        next(stream_audio(media["speech.flac"], limit_seconds=1))
    with pytest.raises(s2f.AudioError, match=r"longer than 1 s, the limit \(--max-seconds\)"):
        next(stream_audio(np.zeros(2 * SAMPLE_RATE, np.float32), limit_seconds=1))


def test_cutter_and_blocks_cut_what_slicing_the_whole_cuts() -> None:
    """Random overlapping ranges (some empty, some past the end) from a stream of pieces of random sizes, joined
    into blocks and cut again, two cutters fed at once: every range equals the slice of the whole."""
    rng = np.random.default_rng(2)
    whole = rng.standard_normal(3 * BLOCK_SAMPLES + 12_345).astype(np.float32)
    for trial in range(4):
        starts = np.sort(rng.integers(0, whole.size + 1000, 60))
        ranges = [(int(a), int(a + rng.integers(0, 200_000))) for a in starts] + [(whole.size + 5, whole.size + 9)]
        blocks, direct = Collect(), Collect()
        chain = Tee(Blocks(Tee(blocks, Cutter(ranges, cut_from_blocks := Collect()))), Cutter(ranges, direct))
        edges = np.sort(rng.integers(0, whole.size, 40 + trial))
        for piece in np.split(whole, edges):
            chain.add(piece)
        chain.finish()
        assert [b.size for b in blocks.pieces[:-1]] == [BLOCK_SAMPLES] * (len(blocks.pieces) - 1)
        np.testing.assert_array_equal(np.concatenate(blocks.pieces), whole)
        for cuts in (direct.pieces, cut_from_blocks.pieces):
            assert len(cuts) == len(ranges)
            for (a, b), cut in zip(ranges, cuts, strict=True):
                np.testing.assert_array_equal(cut, whole[a:b])
    with pytest.raises(ValueError, match="sorted"):
        Cutter([(10, 20), (5, 30)], Collect())


def test_span_joins_the_samples_inside_its_ranges_as_they_pass() -> None:
    """Sorted, non-overlapping ranges (some empty, one past the end, the last open) from pieces of random sizes:
    what reaches the reader is the slices of the whole joined, and no piece it is handed is longer than the
    stream's own pieces (nothing is held back)."""
    rng = np.random.default_rng(3)
    whole = rng.standard_normal(2 * BLOCK_SAMPLES + 999).astype(np.float32)
    for trial in range(4):
        edges = np.sort(rng.choice(whole.size + 5000, 40, replace=False))
        ranges = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
        ranges = [*ranges[:-1], (ranges[-1][0], None)] if trial % 2 else [*ranges, (ranges[-1][1], ranges[-1][1])]
        joined = Collect()
        span = Span(ranges, joined)
        pieces = np.split(whole, np.sort(rng.integers(0, whole.size, 30)))
        for piece in pieces:
            span.add(piece)
        span.finish()
        expected = np.concatenate([whole[a:b] for a, b in ranges])
        np.testing.assert_array_equal(np.concatenate(joined.pieces) if joined.pieces else expected[:0], expected)
        assert max(p.size for p in joined.pieces) <= max(p.size for p in pieces)
    for bad in ([(10, 20), (15, 30)], [(5, 2)], [(0, None), (10, 20)], [(-1, 5)]):
        with pytest.raises(ValueError, match="overlap"):
            Span(bad, Collect())


def test_a_long_pass_shows_how_far_it_has_read(long_flac: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar on stderr once a pass runs PROGRESS_AFTER_SECONDS (here at once): minutes read, out of the minutes the
    pass before counted; none without a label."""
    from speech2face.voice import stream

    monkeypatch.setattr(stream, "PROGRESS_AFTER_SECONDS", 0.0)
    recording = Recording(long_flac)
    read(recording, Collect())
    assert capsys.readouterr().err == "" and recording.blocks_read == 3
    read(recording, Collect(), "reading")
    shown = capsys.readouterr().err
    assert "long.flac: reading" in shown and "/3 [" in shown and "min/s" in shown, shown  # out of 3 minutes


def test_a_recording_of_one_block_is_decoded_once(media: dict[str, Path], long_flac: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A short file (a minute or less) is kept after its first whole pass, so the pipeline's later passes slice it
    instead of decoding it again; a longer one is decoded on every pass (and never kept whole)."""
    from speech2face.voice import stream

    decodes = []
    decode = stream.decode_pieces
    monkeypatch.setattr(stream, "decode_pieces", lambda *a, **k: (decodes.append(1), decode(*a, **k))[1])
    short, long = Recording(media["speech.flac"]), Recording(long_flac)
    for recording in (short, long):
        first, again = Collect(), Collect()
        read(recording, first)
        read(recording, again)
        np.testing.assert_array_equal(np.concatenate(again.pieces), np.concatenate(first.pieces))
    assert len(decodes) == 1 + 2
    assert isinstance(short.source, np.ndarray) and isinstance(long.source, Path)
