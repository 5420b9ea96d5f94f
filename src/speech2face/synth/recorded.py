"""Voices from recorded speech: real speakers from Debian packages, transformed by Praat's "Change gender".

An identity's voice borrows the utterances of one recorded speaker (drawn independently of its face)
and turns them into its own voice with praat-parselmouth: the median F0 and pitch range it should have,
its vocal-tract length (formant shift ratio = its formant scale / the recorded speaker's), and its rate
(duration factor). What is real: the recorded speech. What is synthetic: the pairing with a face and the
transformation.

    speakers = sources()                            # the recorded speakers; DataError names a missing package
    wave, said = speak(speakers, voice, rng)        # 16 kHz float32, and which files it used

`HELD_OUT` (Carlo, a man with a high voice, and Menardi, a woman) are never sources: they are only for
testing a trained model on real voices (`held_out_recordings`, benchmarks/real_voices.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from ..errors import AudioError, DataError
from ..voice.audio import SAMPLE_RATE, load_audio
from . import synthesized
from .attributes import FORMANT_SCALE, Voice

MIN_SECONDS = 3.0  # a clip's utterances add up to at least this much (like the espeak world's ~3 s)
GAP_SECONDS = 0.2  # silence between two utterances
PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 75.0, 600.0  # Praat's pitch analysis range for "Change gender"
# the lowest F0 a changed voice may reach (no human voice goes lower): a wider pitch range that would drive the
# recording's lowest pitch below it (towards 0 Hz, where Praat's "Change gender" never returns) is narrowed to it
LOWEST_CHANGED_F0_HZ = 50.0
TRIM_DB = 35.0  # leading / trailing audio this far below the utterance's peak frame is cut
PEAK = 0.9  # output peak level
SPEAK_TRIES = 5


@dataclass(frozen=True)
class Speaker:
    """A real speaker: recorded files a Debian package installs (`kind` "recorded"), or a synthesiser voice
    built from a real speaker's recordings (`kind` "synthesized": `command` is (festival | flite, voice), the
    sentences it says are in `language`; synthesized.py)."""

    name: str
    sex: str
    language: str
    package: str
    folder: str
    pattern: str
    licence: str
    kind: str = "recorded"
    command: tuple[str, str] = ("", "")

    def files(self) -> list[Path]:
        if self.kind == "synthesized":
            return synthesized.bank(self.command, self.language, self.package)
        found = sorted(Path(self.folder).glob(self.pattern))
        if not found:
            raise DataError(f"recorded voices need the Debian package {self.package} (speaker {self.name}, "
                            f"{self.folder}): apt-get install {self.package}")
        return found


ASTERISK = "/usr/share/asterisk/sounds"
FILLETS = "/usr/share/games/fillets-ng/sound"
ASTERISK_LICENCE = "CC-BY-SA-3.0 (Asterisk core sounds, Digium)"


def _festival(name: str, sex: str, language: str, package: str, voice: str, licence: str) -> Speaker:
    return Speaker(name, sex, language, package, "", "", licence, "synthesized", ("festival", f"(voice_{voice})"))


def _flite(name: str, sex: str, voice: str) -> Speaker:
    return Speaker(name, sex, "en", "flite", "", "", "BSD-style (CMU ARCTIC, flite)", "synthesized", ("flite", voice))


# Real speakers the world borrows utterances from (never HELD_OUT ones). Recorded speech first; recorded men run
# out after one, so men (and, to keep "synthesised" from meaning "man", women too) also come from synthesiser
# voices built from real speakers' recordings. `pick_source` draws a voice's speaker among its own sex's.
SOURCES = (
    Speaker("allison", "female", "en-US", "asterisk-core-sounds-en-g722", f"{ASTERISK}/en_US_f_Allison", "*.g722",
            ASTERISK_LICENCE),
    Speaker("june", "female", "fr-CA", "asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June", "*.wav",
            ASTERISK_LICENCE),
    Speaker("ru-ivr", "female", "ru-RU", "asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU", "*.wav",
            ASTERISK_LICENCE),
    Speaker("july-es-co", "female", "es-CO", "asterisk-prompt-es-co", f"{ASTERISK}/es", "*.gsm",
            "GPL-2 (Asterisk Colombian Spanish prompts, Avatar Ltda. / July E. Jimenez)"),
    Speaker("fillets-big-fish", "male", "cs", "fillets-ng-data-cs", FILLETS, "*/cs/*-v-*.ogg",
            "GPL-2+ (Fish Fillets NG data)"),
    Speaker("fillets-small-fish", "female", "cs", "fillets-ng-data-cs", FILLETS, "*/cs/*-m-*.ogg",
            "GPL-2+ (Fish Fillets NG data)"),
    _festival("machac", "male", "cs", "festvox-czech-machac", "czech_machac", "GPL-3+ (Brailcom czech diphones)"),
    _festival("czech-ph", "male", "cs", "festvox-czech-ph", "czech_ph", "GPL-2+ (Brailcom czech diphones)"),
    _festival("dita", "female", "cs", "festvox-czech-dita", "czech_dita", "GPL-3+ (Brailcom czech diphones)"),
    _festival("kal", "male", "en", "festvox-kallpc16k", "kal_diphone", "Festvox free licence (CMU/CSTR)"),
    _festival("ked", "male", "en", "festvox-kdlpc16k", "ked_diphone", "Festvox free licence (CMU/CSTR)"),
    _festival("slt", "female", "en", "festvox-us-slt-hts", "cmu_us_slt_arctic_hts", "BSD-3-clause (CMU ARCTIC)"),
    _festival("suopuhe-mv", "male", "fi", "festvox-suopuhe-mv", "hy_fi_mv_diphone", "LGPL (Suopuhe)"),
    _festival("suopuhe-lj", "female", "fi", "festvox-suopuhe-lj", "suo_fi_lj_diphone", "LGPL (Suopuhe)"),
    _festival("ona", "female", "ca", "festvox-ca-ona-hts", "upc_ca_ona_hts", "LGPL-2.1+ (UPC Catalan HTS)"),
    _flite("awb", "male", "awb"),
    _flite("rms", "male", "rms"),
)
RECORDED_ONLY = tuple(s for s in SOURCES if s.kind == "recorded")
HELD_OUT = (
    Speaker("carlo", "male", "it-IT", "asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo", "*.wav",
            ASTERISK_LICENCE),
    Speaker("menardi", "female", "it-IT", "asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi", "*.wav",
            "CC-BY-SA-3.0 (Asterisk Italian prompts, Menardi)"),
)


@dataclass(frozen=True)
class Source:
    """A recorded speaker and its utterance files (checked to exist)."""

    speaker: Speaker
    files: tuple[Path, ...]


def sources(speakers: tuple[Speaker, ...] | None = None) -> tuple[Source, ...]:
    """The recorded speakers (default SOURCES) with their files; a DataError names the first missing package."""
    _require_parselmouth()
    return tuple(Source(speaker, tuple(speaker.files())) for speaker in speakers or SOURCES)


def _require_parselmouth() -> None:
    try:
        import parselmouth  # noqa: F401
    except ImportError:
        raise DataError("recorded voices need praat-parselmouth: pip install 'speech2face[data]' "
                        "(or --voices espeak)") from None


@functools.lru_cache(maxsize=512)  # ~64 MB of 2 s utterances per worker; decoding one takes ~1 ms
def utterance(path: Path) -> np.ndarray:
    """One recorded file at 16 kHz, its leading and trailing silence cut."""
    wave = load_audio(path)
    frame = SAMPLE_RATE // 100
    frames = len(wave) // frame
    if frames == 0:
        return wave
    energy = (wave[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-TRIM_DB / 10))
    return wave[max(0, loud[0] - 5) * frame: min(frames, loud[-1] + 6) * frame]


def readable(files: tuple[Path, ...] | list[Path], order: np.ndarray,
             min_samples: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, wave) of each file in `order` that decodes and lasts at least `min_samples`; a damaged file in a
    system package is skipped."""
    for index in order:
        try:
            wave = utterance(files[index])
        except AudioError:
            continue
        if len(wave) >= min_samples:
            yield files[index].stem, wave


def join_until(utterances: Iterator[tuple[str, np.ndarray]], seconds: float) -> tuple[np.ndarray, list[str], bool]:
    """Utterances taken from the iterator and joined by GAP_SECONDS pauses until they (with their pauses) last
    `seconds`: the wave, their names, and whether it got that long before the iterator ran out."""
    gap = np.zeros(round(GAP_SECONDS * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    names: list[str] = []
    for name, wave in utterances:
        pieces += [wave, gap]
        names.append(name)
        if sum(len(piece) for piece in pieces) >= seconds * SAMPLE_RATE:
            return np.concatenate(pieces[:-1]), names, True
    return (np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.float32)), names, False


def gather(source: Source, rng: np.random.Generator, min_seconds: float = MIN_SECONDS) -> tuple[np.ndarray, list[str]]:
    """Utterances of `source` (each at least 0.25 s) in a random order, joined by short pauses, until at least
    `min_seconds`."""
    order = rng.permutation(len(source.files))
    wave, names, _ = join_until(readable(source.files, order, SAMPLE_RATE // 4), min_seconds)
    if not names:
        raise DataError(f"no usable recording of {source.speaker.name} in {source.speaker.folder}")
    return wave, names


def change_gender(wave: np.ndarray, voice: Voice, source_sex: str, seed: int = 0) -> np.ndarray:
    """Praat's "Change gender" to the voice's median F0, pitch range, formant scale and rate (16 kHz float32).
    Praat draws random numbers (for unvoiced stretches): `seed` makes the output reproducible."""
    import parselmouth
    from parselmouth.praat import call, run

    run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    sound = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE)
    formant_ratio = voice.formant_scale / FORMANT_SCALE[source_sex]
    changed = call(sound, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, formant_ratio, voice.pitch_hz,
                   safe_pitch_range(sound, voice), 1.0 / voice.rate)
    out = np.asarray(changed.values[0], np.float32)
    if round(changed.sampling_frequency) != SAMPLE_RATE:

        out = soxr.resample(out, changed.sampling_frequency, SAMPLE_RATE, quality="HQ").astype(np.float32)
    peak = float(np.abs(out).max(initial=0.0))
    return out * (PEAK / peak) if peak > 0 else out


def safe_pitch_range(sound: Any, voice: Voice) -> float:
    """The voice's pitch range factor, narrowed where it would take the recording's lowest pitch below
    LOWEST_CHANGED_F0_HZ. "Change gender" scales each pitch f as median' + range x (f x median' / median - median'),
    with median' the new median: a recording with deep dips (creak, an octave error) and a wide range would reach
    0 Hz or below, and Praat then loops for ever (seen: a small-fish recording, range 1.76, new median 213 Hz)."""
    pitch = sound.to_pitch(pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ).selected_array["frequency"]
    voiced = pitch[pitch > 0]
    if not len(voiced):
        return voice.pitch_range
    lowest = float(voiced.min()) * voice.pitch_hz / float(np.median(voiced))  # the lowest pitch, moved to median'
    headroom = voice.pitch_hz - LOWEST_CHANGED_F0_HZ
    if voice.pitch_range * (voice.pitch_hz - lowest) <= headroom:
        return voice.pitch_range
    return headroom / (voice.pitch_hz - lowest)


def pick_source(speakers: tuple[Source, ...], sex: str, draw: float) -> Source:
    """The real speaker of a voice of `sex`, from its uniform `draw` (independent of the face): a speaker of the
    same sex, so that the recording carries the sex and Praat only moves it within that sex's range. Recorded and
    synthesised speakers share the chances equally (when the sex has both): otherwise most men would be
    synthesised and most women recorded, and sounding synthesised would tell a voice's sex."""
    own = [s for s in speakers if s.speaker.sex == sex]
    if not own:
        raise DataError(f"no {sex} source speaker")
    groups = [group for kind in ("recorded", "synthesized") if (group := [s for s in own if s.speaker.kind == kind])]
    position = draw * len(groups)
    group = groups[min(len(groups) - 1, int(position))]
    return group[min(len(group) - 1, int((position % 1) * len(group)))]


def speak(speakers: tuple[Source, ...], voice: Voice, rng: np.random.Generator,
          min_seconds: float = MIN_SECONDS) -> tuple[np.ndarray, str]:
    """A clip of the identity's voice (at least `min_seconds` before Praat changes its rate): utterances of its
    recorded speaker, transformed; and what was said (`speaker: file, file, ...`)."""
    import parselmouth

    source = pick_source(speakers, voice.sex, voice.source)
    for _ in range(SPEAK_TRIES):
        wave, names = gather(source, rng, min_seconds)
        seed = int(rng.integers(2**31))
        try:
            return change_gender(wave, voice, source.speaker.sex, seed), f"{source.speaker.name}: {', '.join(names)}"
        except parselmouth.PraatError:  # nothing voiced to move (a prompt folder's tones, sound effects): draw again
            continue
    raise DataError(f"Praat found no voice to change in {SPEAK_TRIES} draws of {source.speaker.name}'s recordings")


HALVES = ("choosing", "measuring")


def prompt_half(path: Path) -> str:
    """Which half of the held-out speakers' prompts a file belongs to: "choosing" (may pick models, settings,
    backbones) or "measuring" (only measures; the figures shown to users). A fixed hash of the prompt's name, so
    both speakers' recordings of one prompt fall in the same half."""
    digest = hashlib.sha256(f"held-out prompt:{path.stem}".encode()).digest()
    return HALVES[digest[0] & 1]


def held_out_recordings(speaker: Speaker, seconds: float, count: int, seed: int = 0,
                        half: str | None = None) -> list[np.ndarray]:
    """`count` recordings of a held-out real speaker (untransformed: the real voice), each its utterances
    joined to at least `seconds`; no file is used twice (fewer recordings when the files run out). `half`:
    only prompts of that half (`prompt_half`), or all."""
    if half is not None and half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    files = [f for f in speaker.files() if half is None or prompt_half(f) == half]
    utterances = readable(files, np.random.default_rng(seed).permutation(len(files)))
    recordings: list[np.ndarray] = []
    while len(recordings) < count:
        wave, _, complete = join_until(utterances, seconds)
        if not complete:
            break
        recordings.append(wave)
    return recordings


ENVELOPE_BAND_HZ = (250.0, 3800.0)  # inside every source's band (8 kHz recordings end at 4 kHz)
ENVELOPE_POINTS = 400  # log-frequency grid
MAX_SHIFT_POINTS = 40  # +-27 % of frequency


def spectral_envelope(wave: np.ndarray) -> tuple[np.ndarray, float]:
    """The long-term spectrum of the loud frames on a log-frequency grid, in dB-like log power, smoothed
    over a third of an octave (so harmonics, i.e. pitch, are gone and formants stay); and the grid step."""
    n_fft, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    energy = (frames**2).mean(axis=1)
    power = (np.abs(np.fft.rfft(frames[energy > 0.1 * energy.mean()], axis=1)) ** 2).mean(axis=0)
    grid = np.geomspace(*ENVELOPE_BAND_HZ, ENVELOPE_POINTS)
    log_power = np.log(np.interp(grid, np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE), power) + 1e-12)
    step = float(np.log(grid[1] / grid[0]))
    kernel = np.hanning(2 * round(np.log(2) / 3 / step) + 1)
    return np.convolve(log_power, kernel / kernel.sum(), mode="same"), step


def formant_shift(original: np.ndarray, changed: np.ndarray) -> float:
    """By what factor `changed` moved the formants of `original` (the same utterances): the shift along log
    frequency that best aligns their spectral envelopes. A vocal-tract proxy independent of pitch."""
    reference, step = spectral_envelope(original)
    moved, _ = spectral_envelope(changed)
    inner = reference[MAX_SHIFT_POINTS:-MAX_SHIFT_POINTS]
    scores = [np.corrcoef(inner, moved[MAX_SHIFT_POINTS + k:len(moved) - MAX_SHIFT_POINTS + k])[0, 1]
              for k in range(-MAX_SHIFT_POINTS, MAX_SHIFT_POINTS + 1)]
    return float(np.exp((int(np.argmax(scores)) - MAX_SHIFT_POINTS) * step))


def median_f0(wave: np.ndarray) -> float:
    """Median F0 (Hz) of the voiced frames (Praat's autocorrelation tracker); nan if none is voiced."""
    import parselmouth

    f0 = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE).to_pitch().selected_array["frequency"]
    return float(np.median(f0[f0 > 0])) if (f0 > 0).any() else float("nan")
