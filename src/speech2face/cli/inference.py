"""Verbs that use models: `s2f predict`, `s2f serve`, `s2f models`, `s2f export`, `s2f info`."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from .. import __version__
from .. import serve as web  # constants only: gradio loads when a server starts
from ..errors import Speech2FaceError
from ..examples import judge_verdicts, write_examples, write_page
from ..export import export_onnx
from ..gallery import Gallery
from ..models.voice_encoder import VoiceEncoder, VoiceEncoderConfig, count_flops
from ..pipeline import Speech2Face
from ..predict import PredictSettings, predict_files
from ..registry import cache_dir, cached_path, entries, pack, user_registry
from ..voice import audio
from .common import RenamedOption, default_of, setting, settings_from


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model and --device: which model a verb runs and where (predict, examples, serve)."""
    parser.add_argument("--model", default="demo", help="a model folder, a training run, or a registered name "
                                                         "(s2f models; default demo: SYNTHETIC)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if present)")


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0 seconds, got {text}")
    return value


def predict_verb(args: argparse.Namespace) -> int:
    settings = settings_from(args, PredictSettings, **({"speakers": 1} if args.one_speaker else {}))
    model = Speech2Face.from_pretrained(args.model, device=args.device, progress=not args.quiet,
                                        min_speech=settings.min_speech, max_seconds=settings.max_seconds)
    print(f"model: {model.card.label}")
    gallery = Gallery.load(args.gallery) if args.gallery else None
    result = predict_files(model, args.inputs, args.output, settings, gallery=gallery, progress=not args.quiet,
                           on_error=lambda _, message: print(f"s2f predict: error: {message}", file=sys.stderr))
    faces = 0
    for item in result.written:
        found = item["prediction"].speakers
        faces += len(found)
        if len(found) == 1:
            print(f"{item['input']} -> {item['image']} ({found[0].windows} window(s), "
                  f"{found[0].voiced_seconds:.1f} s voiced)")
            continue
        print(f"{item['input']}: {len(found)} speakers")
        for image, one in zip(item["images"], found, strict=True):
            print(f"  {one.label} -> {image} ({one.voiced_seconds:.1f} s voiced in {len(one.turns)} turn(s))")
    failed = len(result.failed)
    print(f"{faces} face(s) from {len(result.written)} input(s) in {args.output}"
          + (f"; {failed} input(s) failed" if failed else ""))
    return 1 if failed else 0


def register_predict(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "predict", help="draw the face behind each recording: PNG + JSON per input",
        description="Any audio or video file (wav, mp3, m4a, flac, ogg, mp4, ...) -> a face image (PNG) and a JSON "
                    "(feature, landmarks, model) in OUTDIR. Up to 6 s: repeated to 6 s; longer: up to 8 windows of "
                    "6 s spread over the recording, their features averaged. Silence and noise are refused. "
                    "Several people talking: the speakers are told apart first (a pretrained speaker encoder, "
                    "clustered) and each gets a face from its own speech only: NAME.speaker1.png, "
                    "NAME.speaker2.png ..., their turns in NAME.json. A bad input gets one line on stderr, the "
                    "others are still drawn; the exit code is 1 if any failed.",
        epilog="examples: s2f predict voice.wav interview.mp4 --model demo -o faces; "
               "s2f predict interview.mp4 --speakers 2 (two people, however alike they sound)")
    parser.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio or video files")
    add_model_options(parser)
    parser.add_argument("-o", "--output", default="faces", help="output folder (default faces)")
    parser.add_argument("--gallery", help="a s2f prepare folder: also write the nearest real faces "
                                          "(NAME.nearest.png, and their speakers in the JSON)")
    setting(parser, "--nearest", PredictSettings, "faces per gallery strip", type=positive_int)
    who = parser.add_mutually_exclusive_group()
    setting(who, "--speakers", PredictSettings, "the number of speakers, when you know it (None: found from the "
            "voices)", type=positive_int, metavar="N")
    who.add_argument("--one-speaker", action="store_true",
                     help="read each recording as one voice (one face, from all of it)")
    setting(parser, "--min-speech", PredictSettings, "seconds of speech a face needs, per speaker: less is refused "
            "(music or noise that fools the detector for a moment stays under it)", type=positive_seconds)
    setting(parser, "--max-seconds", PredictSettings, "the longest recording read: a longer one is refused, on the "
            "length its file declares before decoding where it declares one", type=positive_seconds)
    setting(parser, "--batch-size", PredictSettings, "recordings per forward pass", type=positive_int)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=predict_verb)


def examples_verb(args: argparse.Namespace) -> int:

    model = Speech2Face.from_pretrained(args.model, device=args.device, progress=not args.quiet)
    print(f"model: {model.card.label}")
    out = Path(args.output)
    found = write_examples(out / "recordings", args.seed)
    result = predict_files(model, [example.path for example in found], out)
    answers: dict[str, list[dict[str, object]] | str] = {Path(source).stem: error for source, error in result.failed}
    judge, verdicts = judge_verdicts([image for item in result.written for image in item["images"]])
    in_order = iter(verdicts)  # one per image, in the order of the images
    for item in result.written:
        answers[Path(item["input"]).stem] = [
            {"image": image.name, "label": one.label, "voiced_seconds": one.voiced_seconds, "verdict": next(in_order)}
            for image, one in zip(item["images"], item["prediction"].speakers, strict=True)]
    unexpected = 0
    for example in found:
        answer = answers[example.name]
        print(f"{example.name}: {example.what}")
        if isinstance(answer, str):
            print(f"  refused{' (as it should be)' if example.refused else ''}: {answer}")
        else:
            for face in answer:
                print(f"  {face['label']} -> {out / str(face['image'])}: {face['verdict']}")
        unexpected += isinstance(answer, str) != example.refused
    page = write_page(out, model.card.label, model.card.synthetic, found, answers, judge)
    print(f"judge: {judge}\nthe faces, the recordings and the judge's verdicts on one page: {page}\n"
          f"  open it in a browser: file://{page.resolve()}\n"
          f"the web page (upload or record your own voice; these examples are on it too): s2f serve --model "
          f"{args.model}, then open http://127.0.0.1:{default_of(web.ServeSettings, 'port')}")
    return 1 if unexpected else 0


def register_examples(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "examples", help="faces from real recorded voices, with the shipped demo model: a page to open",
        description="Write example recordings (two real voices that no synthetic world ever used, from Debian's "
                    "asterisk-core-sounds-it-wav and asterisk-prompt-it-menardi-wav; a conversation of the two; "
                    "silence; music) into OUT/recordings, draw the faces with the model (one per speaker), ask the "
                    "real age and sex judge about each face, and write OUT/index.html. Silence and music must be "
                    "refused; the exit code is 1 if any example was answered otherwise. `make demo` runs this.",
        epilog="example: s2f examples -o demo-faces")
    add_model_options(parser)
    parser.add_argument("-o", "--output", default="demo-faces", help="output folder (default demo-faces)")
    parser.add_argument("--seed", type=int, default=0, help="which recordings (default 0)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=examples_verb)


def serve_verb(args: argparse.Namespace) -> int:
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"s2f serve: warning: listening on {args.host}: anyone who can reach it can use the model",
              file=sys.stderr)
    web.serve(args.model, settings_from(args, web.ServeSettings), gallery_data=args.gallery, device=args.device)
    return 0


def register_serve(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "serve", help="a web page to upload or record a voice and see the face",
        description="Serve a Gradio page for a model: upload or record a voice, see the face (and with --gallery the "
                    "nearest real faces). Binds 127.0.0.1 unless --host says otherwise. Uploads over --max-upload-mb "
                    "are refused, recordings over --max-seconds and non-audio get a one-line message, and each "
                    "upload is deleted once answered. Needs the [demo] extra (gradio).",
        epilog="example: s2f serve --model demo --port 7860")
    add_model_options(parser)
    setting(parser, "--host", web.ServeSettings, "address to bind (127.0.0.1: this machine only)")
    setting(parser, "--port", web.ServeSettings, "port")
    parser.add_argument("--gallery", help="a s2f prepare folder whose faces are shown as the nearest real faces")
    setting(parser, "--max-upload-mb", web.ServeSettings, "largest upload in MB")
    setting(parser, "--max-seconds", web.ServeSettings, "longest recording in seconds")
    setting(parser, "--concurrency", web.ServeSettings, "requests computed at once", type=positive_int)
    setting(parser, "--min-speech", web.ServeSettings, "seconds of speech a face needs, per speaker",
            type=positive_seconds)
    parser.set_defaults(handler=serve_verb)


def models_verb(args: argparse.Namespace) -> int:
    for entry in entries().values():
        where = cached_path(entry)
        status = (f"shipped: {where}" if where is not None and where == entry.shipped else f"cached: {where}"
                  if where else ("missing: build it with `s2f demo --quick --ship`" if entry.shipped
                                 else f"from {entry.url}"))
        flag = " [SYNTHETIC]" if entry.synthetic else ""
        print(f"{entry.name}{flag}\n    {entry.description}\n    {status}")
    print(f"cache: {cache_dir()}; more entries: {user_registry()}")
    return 0


def register_models(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "models", help="registered models and where they are cached",
        description="List the models that --model accepts by name. Built in: demo (trained by s2f demo --quick on "
                    "the synthetic world; ships inside the package). Add your own in the JSON file named at the end "
                    "of the "
                    'listing: {"NAME": {"url": "https://.../model.tar.gz", "sha256": "...", "description": "..."}} '
                    "(make the archive and its sha256 with s2f export --format tar). Downloads are checked against "
                    "the sha256 and cached; cached models work offline.",
        epilog="example: s2f models")
    parser.set_defaults(handler=models_verb)


def export_verb(args: argparse.Namespace) -> int:

    if args.format == "onnx":
        out = export_onnx(args.model, args.out)
        print(f"{out}: input wave (batch, 96000) float32 16 kHz -> image, landmarks, feature")
        return 0

    model = Speech2Face.from_pretrained(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as temp:
        digest = pack(model.save_pretrained(Path(temp) / model.card.name), args.out)
    print(f"{args.out}\nsha256 {digest}\nregistry entry: "
          + json.dumps({model.card.name: {"url": "URL-OF-" + Path(args.out).name, "sha256": digest,
                                          "synthetic": model.card.synthetic}}))
    return 0


def register_export(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "export", help="a model as ONNX, or as a .tar.gz for a model registry",
        description="--format onnx: one graph from a 6 s 16 kHz wave (batch, 96000) to image, landmarks and "
                    "feature, checked against onnxruntime in the tests (needs onnx). --format tar: a model folder "
                    "as .tar.gz with its sha256 and the registry entry to add (see s2f models --help).",
        epilog="example: s2f export --model demo --format onnx --out demo.onnx")
    parser.add_argument("--model", required=True, help="a model folder, a run, or a registered name")
    parser.add_argument("--format", choices=("onnx", "tar"), required=True)
    parser.add_argument("--out", required=True, help="output file (.onnx or .tar.gz)")
    parser.set_defaults(handler=export_verb)


def info_verb(args: argparse.Namespace) -> int:

    frames = audio.num_frames(round(args.seconds * audio.SAMPLE_RATE))
    rows = []
    for name in args.size:
        config = VoiceEncoderConfig.named(name)
        if frames < config.min_frames:
            raise Speech2FaceError(f"{args.seconds} s is shorter than the {name} encoder's minimum input "
                                   f"({config.min_frames} frames)")
        with torch.device("meta"):  # counts without allocating the (large) paper model
            parameters = VoiceEncoder(config).num_parameters()
        rows.append({"size": name, "parameters": parameters, "frames": frames,
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
        print(f"{row['size']:<14}{row['parameters']:>14,}{row['forward_flops'] / 1e9:>13.2f}"
              f"{row['train_flops'] / 1e9:>15.2f}{row['output_dim']:>8}")
    print("FLOPs count 2 per multiply-add, per clip; train = forward + backward.")
    return 0


def register_info(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "info", help="sizes and costs of the models",
        description="Print the audio front end's settings and, per voice encoder size, its parameters "
                    "and FLOPs per clip (counted on the meta device: instant, no memory).")
    sizes = ("paper", "small")
    parser.add_argument("--size", nargs="+", choices=sizes, default=list(sizes),
                        help="which voice encoder sizes to describe (default: both)")
    parser.add_argument("--config", dest="size", nargs="+", choices=sizes, action=RenamedOption, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length to cost (default: 6, the paper's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=info_verb)
