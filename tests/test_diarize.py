"""Who speaks when, on a real two-speaker recording against its reference turns, and its building blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from speech2face import AudioError, load_audio
from speech2face.voice.activity import merge
from speech2face.voice.diarize import Speaker, diarize, owned_spans, speech_time_accuracy, windows_in


@pytest.fixture(scope="module")
def recording(two_speakers: tuple[bytes, list[tuple[float, float, str]]]) -> np.ndarray:
    return load_audio(two_speakers[0])


def test_two_real_speakers_are_found_and_their_turns_attributed(
        recording: np.ndarray, two_speakers: tuple[bytes, list[tuple[float, float, str]]]) -> None:
    reference = two_speakers[1]
    seconds = len(recording) / 16000
    found = diarize(recording, device="cpu")
    accuracy = speech_time_accuracy(found, reference, seconds)
    print(f"pyannote sample: {len(found)} speakers, {accuracy:.3f} of the speech time attributed right")
    assert [s.label for s in found] == ["speaker1", "speaker2"]
    assert accuracy >= 0.85  # 0.912 measured; one speaker for everything scores 0.51
    assert speech_time_accuracy(found[:1], reference, seconds) < 0.6
    forced = diarize(recording, speakers=2, device="cpu")
    assert len(forced) == 2 and speech_time_accuracy(forced, reference, seconds) >= 0.8
    for speaker in found:
        assert all(a < b for a, b in speaker.turns) and speaker.voiced_seconds > 3
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(speaker.turns, speaker.turns[1:], strict=False))


def test_the_scoring_is_the_brute_force_count() -> None:
    reference = [(0.0, 2.0, "a"), (2.0, 3.0, "b"), (2.5, 3.5, "a")]  # 2.5-3.0 overlapped: not scored
    found = [Speaker("speaker1", ((0.0, 1.0),), 1.0), Speaker("speaker2", ((1.0, 3.5),), 2.5)]
    # best mapping speaker2 -> a: (1.0-2.0 of a) + (3.0-3.5 of a) = 1.5 s; speaker1 -> b: 0; scored 3.0 s
    assert speech_time_accuracy(found, reference, 4.0) == pytest.approx(1.5 / 3.0, abs=0.01)
    assert speech_time_accuracy([], reference, 4.0) == 0.0


def test_windows_cover_the_speech_and_each_moment_has_one_owner() -> None:
    regions = ((0.2, 0.5), (1.0, 2.0), (3.0, 6.1))
    spans = windows_in(regions)
    assert spans[0] == (1.0, 2.0)  # a short region is one window; a too-short one none
    assert all(b - a <= 1.5 + 1e-9 for a, b in spans) and spans[-1][1] == pytest.approx(6.1)
    owned = owned_spans(spans)
    assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in itertools.pairwise(owned))
    assert merge(owned[1:]) == ((3.0, pytest.approx(6.1)),)


def test_silence_has_no_speakers() -> None:
    with pytest.raises(AudioError, match="no speech to tell speakers apart"):
        diarize(np.zeros(16000 * 3, np.float32), device="cpu")
