"""The voice side, beside `faces/`: decoding any recording to 16 kHz and the paper's spectrogram
(`audio.py`), where the speech is (`activity/`), who is speaking (`speakers.py`, the pretrained speaker
encoder) and how many speakers a recording holds (`diarize.py`). Import the submodules; this package
imports none of them, so that `speech2face.voice.audio` stays light."""
