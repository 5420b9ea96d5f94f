"""The `s2f` command: thin verbs over the Python API, each declared beside its handler.

    data.py        synth, prepare, download
    training.py    train-decoder, train
    evaluation.py  evaluate, evaluate-decoder, demo
    inference.py   predict, serve, models, export, info

Every verb has --help; bad input, and a path the system refuses (missing, unreadable, unwritable, a full disk),
ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import Speech2FaceError
from . import data, evaluation, inference, training
from .common import EXIT_USER_ERROR

Handler = Callable[[argparse.Namespace], int]
VERBS = (inference.register_info, data.register_synth, data.register_prepare, data.register_download,
         training.register_train_decoder, training.register_train, evaluation.register_evaluate,
         evaluation.register_evaluate_decoder,
         inference.register_predict, inference.register_examples, inference.register_models, inference.register_serve,
         inference.register_export,
         evaluation.register_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2f",
        description="speech2face: learn what a person looks like from their voice (Speech2Face, Oh et al. 2019).",
        epilog="Run 's2f VERB --help' for each verb's options.")
    parser.add_argument("--version", action="version", version=f"speech2face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for register in VERBS:
        register(verbs)
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
    except BrokenPipeError:  # `s2f ... | head`: the reader left; exit quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141
    except OSError as error:  # a path the system refused: missing, unreadable, unwritable, a full disk
        print(f"s2f {args.verb}: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_USER_ERROR


def describe_os_error(error: OSError) -> str:
    """`PATH: cause` (both paths for a rename or copy), as one line."""
    cause = error.strerror or type(error).__name__
    if error.filename is None:
        return f"{cause} ({error})" if str(error) != cause else cause
    paths = f"{error.filename}" + (f" -> {error.filename2}" if error.filename2 is not None else "")
    return f"{paths}: {cause}"


__all__ = ["EXIT_USER_ERROR", "build_parser", "describe_os_error", "main"]
