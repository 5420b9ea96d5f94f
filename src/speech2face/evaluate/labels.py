"""Attribute labels per speaker (sex, age, ...) from a CSV: for same-attribute controls and probes."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

LABEL_COLUMNS = ("masculinity", "age", "size", "gender", "sex", "age_group", "ethnicity")


@dataclass(frozen=True)
class Labels:
    """One attribute's classes and each labelled speaker's class index."""

    classes: tuple[str, ...]
    by_speaker: dict[str, int]

    def of(self, speakers: list[str]) -> np.ndarray:
        """Class index per speaker, -1 where a speaker has no label."""
        return np.array([self.by_speaker.get(s, -1) for s in speakers], dtype=int)


def load_labels(path: str | Path | None, columns: tuple[str, ...] | None = None) -> dict[str, Labels]:
    """Attribute labels per speaker from a CSV with a `speaker_id` column. Columns: `columns`, or those of
    LABEL_COLUMNS present. Text columns are categories (empty = unlabelled); 0/1 columns stay binary; other
    numeric columns are split at their median over the file (the synthetic world's standard-normal
    attributes -> below/above 0, about)."""
    if path is None:
        return {}
    try:
        with Path(path).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read labels ({error})") from error
    if not rows or "speaker_id" not in rows[0]:
        raise DataError(f"{path}: a labels CSV needs a header with a speaker_id column")
    wanted = columns or tuple(c for c in LABEL_COLUMNS if c in rows[0])
    missing = [c for c in wanted if c not in rows[0]]
    if missing or not wanted:
        raise DataError(f"{path}: no label column {', '.join(missing) or 'of ' + ', '.join(LABEL_COLUMNS)}")
    out = {}
    for column in wanted:
        values = {row["speaker_id"]: row[column].strip() for row in rows if row[column].strip()}
        try:
            numbers = {s: float(v) for s, v in values.items()}
        except ValueError:
            classes = tuple(sorted(set(values.values())))
            out[column] = Labels(classes, {s: classes.index(v) for s, v in values.items()})
            continue
        if set(numbers.values()) <= {0.0, 1.0}:
            out[column] = Labels(("0", "1"), {s: int(v) for s, v in numbers.items()})
        else:
            median = float(np.median(list(numbers.values())))
            out[column] = Labels((f"<= {median:.3g}", f"> {median:.3g}"),
                                 {s: int(v > median) for s, v in numbers.items()})
    return out
