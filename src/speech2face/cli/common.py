"""What the verbs share: options whose defaults come from the settings dataclasses (stated once, there),
the training options, and settings built from parsed arguments."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

EXIT_USER_ERROR = 2
SettingsT = TypeVar("SettingsT")


def default_of(settings: type, field: str) -> Any:
    """The default of one field of a settings dataclass."""
    for item in dataclasses.fields(settings):
        if item.name == field:
            return item.default
    raise KeyError(f"{settings.__name__} has no field {field!r}")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(parser: argparse._ActionsContainer, flag: str, settings: type, help: str, *, field: str | None = None,
            **options: Any) -> None:
    """`flag`, stored as the settings field of the same name (or `field`), defaulting to that field's default;
    the help ends with the default."""
    field = field or flag.lstrip("-").replace("-", "_")
    default = default_of(settings, field)
    if isinstance(default, bool):  # a switch: present means the opposite of the default
        options.setdefault("action", "store_false" if default else "store_true")
    elif "choices" not in options:
        options.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        if default is not None:
            options.setdefault("type", type(default))
    # a switch says what it does, and an option without a default says what its absence means
    shown = "" if isinstance(default, bool) or default is None else f" (default {_shown(default)})"
    parser.add_argument(flag, dest=field, default=default, help=help + shown, **options)


def settings_from(args: argparse.Namespace, settings: type[SettingsT], **overrides: Any) -> SettingsT:
    """A settings dataclass from the parsed arguments named like its fields (the rest keep their defaults)."""
    values = {item.name: getattr(args, item.name) for item in dataclasses.fields(settings)  # type: ignore[arg-type]
              if hasattr(args, item.name)}
    return settings(**values | overrides)


class RenamedOption(argparse.Action):
    """An old flag kept working: stores to its new name's field and says once, on stderr, what replaced it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        new = "--" + self.dest.replace("_", "-")
        print(f"s2f: warning: {option_string} is deprecated; use {new} (same values)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_size(parser: argparse.ArgumentParser, settings: type, sizes: dict[str, str], old: str = "--config") -> None:
    """--size (a network size, one of `sizes`, each with what it is) and its old name, `old`, as a hidden alias:
    "config" means the model classes' config.json alone."""
    setting(parser, "--size", settings, "network size: " + "; ".join(f"{k}: {v}" for k, v in sizes.items()),
            choices=tuple(sizes))
    parser.add_argument(old, dest="size", choices=tuple(sizes), action=RenamedOption, help=argparse.SUPPRESS)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_training_options(parser: argparse.ArgumentParser, settings: type, batch_help: str, eval_help: str, *,
                         sizes: dict[str, str], several_data: bool = False) -> None:
    """The options every training verb shares: data, run folder, schedule, checkpoints, device, resume.
    `sizes`: the network sizes --size offers, with what each is."""
    if several_data:
        parser.add_argument("--data", required=True, action="append", metavar="DIR",
                            help="a folder made by s2f prepare (photos or videos); repeat to train on several")
    else:
        parser.add_argument("--data", required=True, help="a folder made by s2f prepare")
    parser.add_argument("--out", required=True, help="run folder")
    add_size(parser, settings, sizes)
    setting(parser, "--steps", settings, "optimiser steps")
    setting(parser, "--batch-size", settings, batch_help)
    setting(parser, "--lr", settings, "Adam learning rate")
    setting(parser, "--eval-every", settings, eval_help)
    setting(parser, "--checkpoint-every", settings, "checkpoint every N steps")
    setting(parser, "--log-every", settings, "log the losses to metrics.jsonl every N steps")
    setting(parser, "--shuffle-buffer", settings, "samples in the shuffle buffer (0: none, and N processes see "
                                                  "exactly the batches of one)")
    setting(parser, "--seed", settings, "random seed")
    setting(parser, "--workers", settings, "data loader processes per training process (0: in the process)")
    setting(parser, "--device", settings, "auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    add_quiet(parser)
