"""Does a model answer real voices? Real speakers that no world ever used as a source (`synth.recorded.HELD_OUT`:
Carlo, a man with a high voice, ~185 Hz; Menardi, a woman, ~180 Hz: pitch alone cannot tell them apart) ->
the faces the model draws -> the real judge's sex, against the speaker's.

    found = judge_real_voices(Speech2Face.from_pretrained("demo"), recordings=20, seconds=10, half="measuring")

Their prompts are split once, by a fixed hash of the prompt's name (`recorded.prompt_half`), into a "choosing"
half (anything that picks a model, a backbone or a setting may look at it) and a "measuring" half (only ever
measures: the figures README and the model cards show).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError
from ..faces.judge import Judge
from ..synth.recorded import HELD_OUT, held_out_recordings
from ..voice.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from ..pipeline import Speech2Face


REAL_RECORDINGS = 20  # per speaker and half (each half holds ~30 of ~10 s)
REAL_SECONDS = 10.0
SPARE_RECORDINGS = 5  # drawn beyond `recordings`, to replace those without speech


def judge_real_voices(model: Speech2Face, recordings: int = REAL_RECORDINGS, seconds: float = REAL_SECONDS,
                      seed: int = 0, half: str = "measuring") -> dict[str, Any]:
    """Per held-out speaker and overall: the share of its recordings (of prompts of `half`) whose drawn face the
    judge calls the speaker's sex (chance 0.5), with each face's p(male)."""
    judge = Judge()
    out: dict[str, Any] = {"judge": judge.name, "chance": 0.5, "half": half, "seconds": seconds, "speakers": {}}
    right: list[bool] = []
    for speaker in HELD_OUT:
        # a prompt folder holds a few tones and music clips: recordings the model refuses (no speech) are counted
        # and replaced by the next ones, so every speaker gets `recordings` recordings of speech
        candidates = held_out_recordings(speaker, seconds, recordings + SPARE_RECORDINGS, seed, half)
        clips, voiced, lengths, refused = [], [], [], 0
        for wave in candidates:
            try:
                clip, seconds_voiced = model.clips(wave)
            except AudioError:
                refused += 1
                continue
            if len(clips) < recordings:
                clips.append(clip)
                voiced.append(seconds_voiced)
                lengths.append(len(wave))
        drawn = np.stack([np.asarray(p.image) for p in model.predict_clips(clips, voiced)])
        p_male = judge(drawn).p_male
        agree = (p_male >= 0.5) == (speaker.sex == "male")
        right += agree.tolist()
        out["speakers"][speaker.name] = {
            "sex": speaker.sex, "package": speaker.package, "recordings": len(clips), "refused_no_speech": refused,
            "mean_seconds": round(float(np.mean(lengths)) / SAMPLE_RATE, 2),
            "agreement": float(agree.mean()), "p_male": [round(float(p), 3) for p in p_male]}
    out["recordings"] = len(right)
    out["agreement"] = float(np.mean(right))
    return out
