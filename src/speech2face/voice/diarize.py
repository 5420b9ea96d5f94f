"""Who speaks when: speech regions (the VAD) -> 1.5 s windows -> speaker vectors (`speakers`) -> clustering.

    found = diarize(wave)                         # a 16 kHz wave or a stream.Recording; or speakers=2
    for speaker in found:                         # in order of first appearance
        speaker.label, speaker.turns, speaker.voiced_seconds

Windows of WINDOW_SECONDS every HOP_SECONDS inside each speech region are embedded and clustered by
average-linkage agglomerative clustering on cosine distance (scipy): clusters merge while their mean
distance is below THRESHOLD (documented in docs/predict.md, measured on a real two-speaker recording), or
until `speakers` clusters remain when the count is given. A cluster with less than MIN_SPEAKER_SECONDS of
speech is folded into the nearest other one (a cough is not a speaker). Each window owns the middle
HOP_SECONDS of itself; a speaker's turns are its windows' spans, joined where they touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AudioError
from . import speakers as speaker_encoder
from .activity import Activity, SpeechDetector, merge
from .stream import Cutter, Recording, read, sample_range

WINDOW_SECONDS = 1.5
HOP_SECONDS = 0.75
MIN_WINDOW_SECONDS = 0.5  # a speech region shorter than this gets no window
THRESHOLD = 0.3  # cosine distance between two clusters' windows (average linkage) that keeps them apart
MIN_SPEAKER_SECONDS = 3.0
MIN_SPEAKER_SHARE = 0.2  # of the recording's speech: a smaller cluster is an outlier, not a speaker
# at most this many windows are clustered (~25 minutes of speech; the linkage needs memory in their square): a
# longer recording's windows are clustered on an evenly spread subset, and every window joins its nearest cluster
MAX_CLUSTERED_WINDOWS = 2000


@dataclass(frozen=True)
class Speaker:
    """One speaker of a recording: its turns (start, end) in seconds and the seconds of speech in them."""

    label: str
    turns: tuple[tuple[float, float], ...]
    voiced_seconds: float

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "turns": turns_json(self.turns),
                "voiced_seconds": round(self.voiced_seconds, 2)}


def turns_json(turns: tuple[tuple[float, float], ...]) -> list[list[float]]:
    """Turns as JSON: [[start, end], ...] in seconds, to the hundredth."""
    return [[round(a, 2), round(b, 2)] for a, b in turns]


def windows_in(regions: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
    """(start, end) of the windows over the speech regions: every HOP_SECONDS, WINDOW_SECONDS long (a shorter
    region is one window of its own length)."""
    spans = []
    for start, end in regions:
        if end - start < MIN_WINDOW_SECONDS:
            continue
        if end - start <= WINDOW_SECONDS:
            spans.append((start, end))
            continue
        first = np.arange(start, end - WINDOW_SECONDS + 1e-9, HOP_SECONDS)
        spans += [(float(a), float(a) + WINDOW_SECONDS) for a in first]
        if spans[-1][1] < end - 1e-6:  # the region's tail
            spans.append((end - WINDOW_SECONDS, end))
    return spans


def cluster(vectors: np.ndarray, speakers: int | None = None, threshold: float = THRESHOLD) -> np.ndarray:
    """Cluster index (0..K-1) per unit vector: average linkage on cosine distance, cut at `threshold` or
    into `speakers` clusters. Beyond MAX_CLUSTERED_WINDOWS vectors, an evenly spread subset is clustered and
    each vector takes the cluster whose mean it is nearest (cosine)."""
    if len(vectors) > MAX_CLUSTERED_WINDOWS:
        subset = np.linspace(0, len(vectors) - 1, MAX_CLUSTERED_WINDOWS).round().astype(int)
        labels = cluster(vectors[subset], speakers, threshold)
        means = np.stack([vectors[subset][labels == c].mean(axis=0) for c in range(labels.max() + 1)])
        means /= np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)
        return np.unique(np.argmax(vectors @ means.T, axis=1), return_inverse=True)[1]
    return _linkage_clusters(vectors, speakers, threshold)


def _linkage_clusters(vectors: np.ndarray, speakers: int | None, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) < 2:
        return np.zeros(len(vectors), int)
    if speakers:  # Ward's criterion on unit vectors (Euclidean ~ cosine) splits into balanced groups
        tree = linkage(vectors.astype(np.float64), method="ward")
        labels = fcluster(tree, t=min(speakers, len(vectors)), criterion="maxclust")
    else:
        tree = linkage(vectors.astype(np.float64), method="average", metric="cosine")
        labels = fcluster(tree, t=threshold, criterion="distance")
    return np.unique(labels, return_inverse=True)[1]


def owned_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The part of each window that it decides: its middle, extended to where the neighbours' middles begin."""
    owned = []
    for index, (start, end) in enumerate(spans):
        left = start if index == 0 or spans[index - 1][1] <= start else (start + spans[index - 1][1]) / 2
        right = end if index == len(spans) - 1 or spans[index + 1][0] >= end else (end + spans[index + 1][0]) / 2
        owned.append((left, right))
    return owned


def fold_small(labels: np.ndarray, vectors: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Clusters with less than MIN_SPEAKER_SECONDS of speech join the nearest larger cluster (by centroid)."""
    labels = labels.copy()
    while True:
        totals = np.bincount(labels, weights=seconds)
        present = np.flatnonzero(totals > 0)
        floor = max(MIN_SPEAKER_SECONDS, MIN_SPEAKER_SHARE * totals.sum())
        small = [c for c in present if totals[c] < floor]
        if not small or len(present) == 1:
            return np.unique(labels, return_inverse=True)[1]
        smallest = min(small, key=lambda c: totals[c])
        centroids = {c: vectors[labels == c].mean(axis=0) for c in present if c != smallest}
        mine = vectors[labels == smallest].mean(axis=0)
        labels[labels == smallest] = max(centroids, key=lambda c: float(centroids[c] @ mine))


def diarize(source: np.ndarray | Recording, speakers: int | None = None, threshold: float = THRESHOLD,
            detector: SpeechDetector | None = None, device: str | torch.device | None = None,
            activity: Activity | None = None) -> list[Speaker]:
    """The speakers of a recording (a 16 kHz wave, or a `Recording` read a block at a time), in order of first
    appearance. AudioError when it holds no speech. `activity`: the detector's answer for it, when the caller
    has it already."""
    recording = source if isinstance(source, Recording) else Recording(source)
    if activity is None:
        listening = (detector or SpeechDetector(device)).stream()
        read(recording, listening)
        activity = listening.activity
    spans = windows_in(activity.regions)
    if not activity.has_speech or not spans:
        raise AudioError(f"no speech to tell speakers apart: {activity.describe()}")
    embedder = speaker_encoder.WindowEmbedder(device)
    read(recording, window_reader(spans, embedder))
    return speakers_from(embedder.vectors, spans, activity, speakers, threshold)


def window_reader(spans: list[tuple[float, float]], embedder: speaker_encoder.WindowEmbedder) -> Cutter:
    """A reader that hands each window of `spans` (`windows_in`) to the speaker encoder as the recording passes."""
    return Cutter([sample_range(a, b) for a, b in spans], embedder)


def speakers_from(vectors: np.ndarray, spans: list[tuple[float, float]], activity: Activity,
                  speakers: int | None = None, threshold: float = THRESHOLD) -> list[Speaker]:
    """The speakers that the windows' vectors (N, 256) of `spans` make, clustered, in order of first appearance."""
    owned = owned_spans(spans)
    seconds = np.array([activity.speech_in(a, b) for a, b in owned])
    labels = cluster(vectors, speakers, threshold)
    if not speakers:
        labels = fold_small(labels, vectors, seconds)
    order = sorted(set(labels.tolist()), key=lambda c: owned[int(np.flatnonzero(labels == c)[0])][0])
    found = []
    for number, index in enumerate(order, start=1):
        mine = [owned[i] for i in np.flatnonzero(labels == index)]
        found.append(Speaker(f"speaker{number}", merge(mine), float(seconds[labels == index].sum())))
    return found


def speech_time_accuracy(found: list[Speaker], reference: list[tuple[float, float, str]], seconds: float,
                         step: float = 0.01) -> float:
    """The share of the reference's single-speaker speech time that `found` gives to the right speaker, under
    the best one-to-one mapping of labels (scipy's Hungarian solver); overlapped speech is not scored and
    speech `found` gives to no one counts as wrong. `reference`: (start, end, speaker) turns."""
    from scipy.optimize import linear_sum_assignment

    times = np.arange(0.0, seconds, step)
    names = sorted({name for _, _, name in reference})
    truth, talking = np.full(len(times), -1), np.zeros(len(times), int)
    for start, end, name in reference:
        inside = (times >= start) & (times < end)
        talking += inside
        truth[inside] = names.index(name)
    truth[talking != 1] = -1
    guess = np.full(len(times), -1)
    for index, speaker in enumerate(found):
        for start, end in speaker.turns:
            guess[(times >= start) & (times < end)] = index
    overlap = np.array([[np.sum((truth == i) & (guess == k)) for k in range(len(found))] for i in range(len(names))])
    rows, columns = linear_sum_assignment(-overlap) if len(found) else ([], [])
    scored = np.sum(truth >= 0)
    return float(overlap[rows, columns].sum() / scored) if scored else float("nan")
