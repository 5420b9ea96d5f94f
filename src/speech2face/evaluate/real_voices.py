"""Does a model answer real voices? Real speakers that no world ever used as a source (`synth.recorded.HELD_OUT`:
Carlo, a man with a high voice, ~185 Hz; Menardi, a woman, ~180 Hz: pitch alone cannot tell them apart) ->
the faces the model draws -> the real judge's sex, against the speaker's.

    found = judge_real_voices(Speech2Face.from_pretrained("demo"), recordings=10, seconds=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE

if TYPE_CHECKING:
    from ..pipeline import Speech2Face


def judge_real_voices(model: Speech2Face, recordings: int = 10, seconds: float = 10.0,
                      seed: int = 0) -> dict[str, Any]:
    """Per held-out speaker and overall: the share of its recordings whose drawn face the judge calls the
    speaker's sex (chance 0.5), with each face's p(male)."""
    from ..faces.judge import Judge
    from ..synth.recorded import HELD_OUT, held_out_recordings

    judge = Judge()
    out: dict[str, Any] = {"judge": judge.name, "chance": 0.5, "speakers": {}}
    right: list[bool] = []
    for speaker in HELD_OUT:
        waves = held_out_recordings(speaker, seconds, recordings, seed)
        drawn = np.stack([np.asarray(p.image) for p in model.predict_batch(waves)])
        p_male = judge(drawn).p_male
        agree = (p_male >= 0.5) == (speaker.sex == "male")
        right += agree.tolist()
        out["speakers"][speaker.name] = {
            "sex": speaker.sex, "package": speaker.package, "recordings": len(waves),
            "mean_seconds": round(float(np.mean([len(w) for w in waves])) / SAMPLE_RATE, 2),
            "agreement": float(agree.mean()), "p_male": [round(float(p), 3) for p in p_male]}
    out["recordings"] = len(right)
    out["agreement"] = float(np.mean(right))
    return out
