"""Is there speech in a recording, and where: `detector.py` (Silero VAD, `silero.py`; the `periodicity.py`
fallback when the network cannot load).

    detector = SpeechDetector()              # loads the network once; hold it, do not reload per call
    activity = detector(wave)                 # .has_speech, .speech_seconds, .regions [(start_s, end_s)]
"""

from .detector import Activity, SpeechDetector, merge, regions_from, speech_activity

__all__ = ["Activity", "SpeechDetector", "merge", "regions_from", "speech_activity"]
