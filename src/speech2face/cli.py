"""The `s2f` command: thin verbs over the Python API.

Every verb has --help; bad input ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import Speech2FaceError

EXIT_USER_ERROR = 2

Handler = Callable[[argparse.Namespace], int]


def _info(args: argparse.Namespace) -> int:
    import torch

    from . import audio
    from .models.voice_encoder import VoiceEncoder, VoiceEncoderConfig, count_flops

    frames = audio.num_frames(round(args.seconds * audio.SAMPLE_RATE))
    rows = []
    for name in args.config:
        config = VoiceEncoderConfig.named(name)
        if frames < config.min_frames:
            raise Speech2FaceError(f"{args.seconds} s is shorter than the {name} encoder's minimum input "
                                   f"({config.min_frames} frames)")
        with torch.device("meta"):  # counts without allocating the (large) paper model
            parameters = VoiceEncoder(config).num_parameters()
        rows.append({"config": name, "parameters": parameters, "frames": frames,
                     "forward_flops": count_flops(config, frames),
                     "train_flops": count_flops(config, frames, backward=True),
                     "output_dim": config.output_dim})
    if args.json:
        print(json.dumps({"version": __version__, "voice_encoders": rows}, indent=2))
        return 0
    print(f"speech2face {__version__}")
    print(f"front end: {audio.SAMPLE_RATE} Hz, window {audio.WIN_LENGTH}, hop {audio.HOP_LENGTH}, "
          f"FFT {audio.N_FFT} -> {audio.N_FREQ} bins, |x|^{audio.COMPRESSION_POWER} on real and imaginary parts")
    print(f"input for {args.seconds:g} s: (2, {frames}, {audio.N_FREQ})")
    print(f"{'voice encoder':<14}{'parameters':>14}{'GFLOPs fwd':>13}{'GFLOPs train':>15}{'output':>8}")
    for row in rows:
        print(f"{row['config']:<14}{row['parameters']:>14,}{row['forward_flops'] / 1e9:>13.2f}"
              f"{row['train_flops'] / 1e9:>15.2f}{row['output_dim']:>8}")
    print("FLOPs count 2 per multiply-add, per clip; train = forward + backward.")
    return 0


def _synth(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from .synth import WorldSettings, make_world

    settings = WorldSettings(identities=args.identities, clips=args.clips, seed=args.seed, strength=args.strength,
                             frame_size=args.size)
    start = time.perf_counter()
    out = make_world(args.out, settings, workers=args.workers, portraits=[Path(p) for p in args.portrait],
                     progress=not args.quiet)
    clips = settings.identities * settings.clips
    print(f"{out}: {settings.identities} identities x {settings.clips} clips = {clips} videos "
          f"in {time.perf_counter() - start:.1f} s (avspeech.csv, clips.csv, attributes.csv, world.json); "
          "SYNTHETIC data")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2f",
        description="speech2face: learn what a person looks like from their voice (Speech2Face, Oh et al. 2019).",
        epilog="Run 's2f VERB --help' for each verb's options.")
    parser.add_argument("--version", action="version", version=f"speech2face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    info = verbs.add_parser(
        "info", help="sizes and costs of the models",
        description="Print the audio front end's settings and, per voice encoder config, its parameters "
                    "and FLOPs per clip (counted on the meta device: instant, no memory).")
    info.add_argument("--config", nargs="+", choices=("paper", "small"), default=["paper", "small"],
                      help="which voice encoder configs to describe (default: both)")
    info.add_argument("--seconds", type=float, default=6.0, help="clip length to cost (default: 6, the paper's)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_info)

    synth = verbs.add_parser(
        "synth", help="generate a synthetic talking-face world (test data, demo)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate N identities whose faces (warped public-domain portraits) and voices (espeak-ng)\n"
                    "share hidden attributes, K talking-face mp4 clips each, as an AVSpeech-style dataset:\n"
                    "  OUT/videos/<speaker>_<clip>.mp4, OUT/avspeech.csv (ytid,start,end,x,y),\n"
                    "  OUT/clips.csv, OUT/attributes.csv (ground truth), OUT/world.json.\n"
                    "The same seed gives the same world. A rerun into the same OUT finishes an interrupted run.",
        epilog="example: s2f synth --out world --identities 100 --clips 4 --seed 0")
    synth.add_argument("--out", required=True, help="output folder (new, empty, or an interrupted world)")
    synth.add_argument("--identities", type=int, default=20, help="number of identities (default 20)")
    synth.add_argument("--clips", type=int, default=4, help="clips per identity (default 4)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--strength", type=float, default=1.0,
                       help="how strongly the voice follows the face's attributes: 1 = fully (default), "
                            "0 = independent (a control where nothing can be learned)")
    synth.add_argument("--size", type=int, default=256, help="video frame size in pixels (default 256)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    synth.add_argument("--portrait", action="append", default=[], metavar="IMAGE",
                       help="an extra base portrait (one face, public domain or yours); repeatable")
    synth.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return handler(args)
    except Speech2FaceError as error:
        print(f"s2f {args.verb}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"s2f {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
