"""Evaluation on held-out speakers; every number beside its chance level or baseline.

- `metrics`: pure functions on features and landmarks (`retrieval`, `feature_similarity`,
  `matching_1_of_2`, `craniofacial`, `demographic_agreement`, ...), tested against brute force;
- `protocol`: the orchestrator, `evaluate_model` (`s2f evaluate`), on the held-out data `data.splits` reads;
- `labels`: attribute labels per speaker from a CSV; `report`: report.html, gallery.png, the text summary.

`speech2face.evaluate.retrieval(...)` etc. are the metrics; the protocol and report need the `[data]` and
`[demo]` extras and are imported from their modules.
"""

from .metrics import (
    Probe,
    agreement,
    cosine_rows,
    craniofacial,
    decoder_quality,
    demographic_agreement,
    feature_similarity,
    landmark_error_iod,
    matching_1_of_2,
    measure_correlations,
    retrieval,
    top1_same_speaker,
    unit_rows,
    voice_quality,
)

__all__ = [
    "Probe",
    "agreement",
    "cosine_rows",
    "craniofacial",
    "decoder_quality",
    "demographic_agreement",
    "feature_similarity",
    "landmark_error_iod",
    "matching_1_of_2",
    "measure_correlations",
    "retrieval",
    "top1_same_speaker",
    "unit_rows",
    "voice_quality",
]
