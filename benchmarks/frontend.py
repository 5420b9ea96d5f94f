"""Spectrogram throughput: the package's batched torch front end against a straightforward per-clip
scipy implementation of the same definition, measured in the same process.

    python benchmarks/frontend.py [--clips 256] [--batch 64] [--threads N]

Prints 6 s clips per second for each, and the ratio (target: >= 20x on 2 cores).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import signal

import speech2face as s2f
from speech2face.voice import audio
from timing import seconds_per_call


def scipy_per_clip(wave: np.ndarray) -> np.ndarray:
    """The baseline a reader would write: scipy's STFT, one clip at a time, then the power law."""
    _, _, spectrum = signal.stft(wave, nperseg=audio.WIN_LENGTH, noverlap=audio.WIN_LENGTH - audio.HOP_LENGTH,
                                 nfft=audio.N_FFT, window="hann", boundary=None, padded=False,
                                 scaling="spectrum")
    spectrum = spectrum.T * np.hanning(audio.WIN_LENGTH + 1)[:-1].sum()  # undo scipy's 1/sum(window) scaling
    parts = np.stack([spectrum.real, spectrum.imag])
    return np.sign(parts) * np.abs(parts) ** audio.COMPRESSION_POWER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=256, help="6 s clips per measurement")
    parser.add_argument("--batch", type=int, default=64, help="clips per spectrogram call")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((args.clips, s2f.CLIP_SAMPLES))).astype(np.float32)
    batches = torch.from_numpy(waves).split(args.batch)

    # The two implementations agree before either is timed.
    ours = s2f.spectrogram(batches[0][:2]).numpy()
    theirs = np.stack([scipy_per_clip(w) for w in waves[:2]])
    assert ours.shape == theirs.shape == (2, 2, s2f.CLIP_FRAMES, audio.N_FREQ)
    assert np.abs(ours - theirs).max() < 1e-2 * np.abs(theirs).max()

    baseline_clips = min(args.clips, 64)
    baseline = seconds_per_call(lambda: [scipy_per_clip(w) for w in waves[:baseline_clips]], args.repeats)
    batched = seconds_per_call(lambda: [s2f.spectrogram(b) for b in batches], args.repeats)
    baseline_rate = baseline_clips / baseline
    batched_rate = args.clips / batched

    print(f"front end, 6 s clips ({s2f.CLIP_FRAMES} x {audio.N_FREQ} x 2), torch threads {args.threads}")
    print(f"  scipy per clip (baseline):   {baseline_rate:10.1f} clips/s")
    print(f"  s2f.spectrogram batch {args.batch:<4}:  {batched_rate:10.1f} clips/s")
    print(f"  ratio: {batched_rate / baseline_rate:.1f}x  (target >= 20x)")
    print_breakdown(torch.from_numpy(waves[:4]), args.repeats)


def print_breakdown(clips: torch.Tensor, repeats: int) -> None:
    """Where a step of 4 clips spends its time, stage by stage (per clip)."""
    window = torch.hann_window(audio.WIN_LENGTH, periodic=True)
    frames = clips.unfold(-1, audio.WIN_LENGTH, audio.HOP_LENGTH)
    windowed = frames * window
    parts = torch.view_as_real(torch.fft.rfft(windowed, n=audio.N_FFT))
    magnitude = parts.abs()
    stages = {
        "frame x window": lambda: frames * window,
        "rfft (512)": lambda: torch.fft.rfft(windowed, n=audio.N_FFT),
        "|x|": lambda: parts.abs(),
        "|x|^0.3 (log, scale, exp)": lambda: magnitude.clone().log_().mul_(audio.COMPRESSION_POWER).exp_(),
        "copysign": lambda: magnitude.clone().copysign_(parts),
        "to (B, 2, T, F) layout": lambda: magnitude.permute(0, 3, 1, 2).contiguous(),
    }
    print("  per-clip breakdown of one 4-clip step (ms):")
    for name, run in stages.items():
        seconds = seconds_per_call(run, repeats, min_seconds=0.2) / clips.shape[0]
        print(f"    {name:<28}{seconds * 1e3:8.3f}")


if __name__ == "__main__":
    main()
