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
                             frame_size=args.size, face_noise=args.face_noise)
    start = time.perf_counter()
    out = make_world(args.out, settings, workers=args.workers, portraits=[Path(p) for p in args.portrait],
                     progress=not args.quiet)
    clips = settings.identities * settings.clips
    print(f"{out}: {settings.identities} identities x {settings.clips} clips = {clips} videos "
          f"in {time.perf_counter() - start:.1f} s (avspeech.csv, clips.csv, attributes.csv, world.json); "
          "SYNTHETIC data")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import manifests
    from .data.prepare import PrepareSettings, prepare

    sources = [name for name in ("avspeech", "voxceleb2", "folder", "pairs") if getattr(args, name)]
    if len(sources) != 1:
        raise Speech2FaceError("give exactly one input: --avspeech CSV (with --videos DIR), --voxceleb2 DIR, "
                               "--folder DIR or --pairs CSV")
    if args.avspeech:
        if not args.videos:
            raise Speech2FaceError("--avspeech needs --videos DIR, the folder of downloaded videos")
        pattern = args.speaker_pattern
        synthetic = (Path(args.avspeech).parent / "world.json").is_file()
        if pattern is None and synthetic:
            pattern = r"^(.+)_\d+$"  # a synthetic world: ytid = <speaker>_<clip>
        segments = manifests.read_avspeech(args.avspeech, args.videos, pattern)
    else:
        synthetic = False
    if args.voxceleb2:
        segments = manifests.read_voxceleb2(args.voxceleb2)
    elif args.folder:
        segments = manifests.read_folder(args.folder, args.speaker_from)
    elif args.pairs:
        segments = manifests.read_pairs(args.pairs)
    settings = PrepareSettings(encoder=args.encoder, frames=args.frames, shard_size=args.shard_size,
                               detector=args.detector, val=args.val, test=args.test, split_seed=args.split_seed,
                               device=args.device)
    summary = prepare(segments, args.out, settings, workers=args.workers, shard_id=args.shard_id,
                      num_shards=args.num_shards, progress=not args.quiet, synthetic=synthetic)
    failed = ", ".join(f"{reason} {count}" for reason, count in summary["failed"].items()) or "none"
    rate = summary["speech_seconds_per_cpu_second"]
    print(f"{args.out}: node {args.shard_id}/{args.num_shards}: {summary['segments_ok']} of {summary['segments']} "
          f"segments ok -> {summary['samples']} samples, {summary['speech_hours'] * 60:.1f} min of speech in "
          f"{summary['shards']} shards; failed: {failed}"
          + (f"; {rate:.1f} s of speech per CPU second" if rate else ""))
    return 0


def _download(args: argparse.Namespace) -> int:
    from .data.download import FAILURES, DownloadSettings, download

    settings = DownloadSettings(url_template=args.url_template, rate_limit=args.rate_limit, sleep=args.sleep,
                                retries=args.retries, max_height=args.max_height)
    counts = download(args.avspeech, args.out, settings, progress=not args.quiet)
    print(f"{args.out}: {counts['downloaded']} downloaded, {counts['skipped']} already there, "
          f"{counts['failed']} failed" + (f" (see {args.out}/{FAILURES})" if counts["failed"] else ""))
    return 0


def _train_decoder(args: argparse.Namespace) -> int:
    from .train import DecoderTraining, train_decoder

    settings = DecoderTraining(steps=args.steps, batch_size=args.batch_size, lr=args.lr, config=args.config,
                               perceptual_weight=args.perceptual_weight, encoder=args.encoder,
                               eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, seed=args.seed,
                               workers=args.workers, device=args.device)
    result = train_decoder(args.data, args.out, settings, resume=args.resume, progress=not args.quiet)
    held = result["held_out"]
    print(f"{args.out}: face decoder, step {result['step']}; held-out speakers: {held['faces']['speakers']} "
          f"({held['faces']['count']} faces)")
    print(f"{'':<12}{'landmarks %IOD':>16}{'pixel L1':>10}{'id cosine':>11}{'R@1':>7}{'chance':>8}")
    for name in ("decoder", "mean_face"):
        row = held[name]
        print(f"{name:<12}{row['landmark_error_iod_pct']:>16.2f}{row['pixel_l1']:>10.1f}"
              f"{row['identity_cosine']:>11.3f}{row['R@1']:>7.2f}{row['chance_R@1']:>8.2f}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import VoiceTraining, train_voice

    settings = VoiceTraining(steps=args.steps, batch_size=args.batch_size, config=args.config, lr=args.lr,
                             l1=args.l1, l2=args.l2, temperature=args.temperature, distill=args.distill,
                             shuffle_buffer=args.shuffle_buffer, log_every=args.log_every,
                             checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, seed=args.seed,
                             workers=args.workers, device=args.device)
    result = train_voice(args.data, args.decoder, args.out, settings, resume=args.resume, progress=not args.quiet)
    held = result.get("held_out")
    if held:  # rank 0 only
        print(f"{args.out}: voice encoder, step {result['step']}, distillation: {result['distill']}")
        print(f"held-out ({held['pool']} clips): cosine {held['cosine']:.3f} (shuffled {held['chance_cosine']:.3f}); "
              + ", ".join(f"R@{k} {held[f'R@{k}']:.2f} (chance {held[f'chance_R@{k}']:.2f})" for k in (1, 2, 5, 10)))
    return 0


def _print_metrics(metrics: dict) -> None:
    cos = metrics["retrieval"]["cos"]
    similarity = metrics["feature_similarity"]
    if metrics["synthetic"]:
        print("SYNTHETIC DATA: trained and evaluated on the synthetic world; says nothing about real people")
    print(f"held-out speakers: {metrics['protocol']['speakers']} (one clip each); retrieval pool {cos['pool']}")
    print("S2F -> face retrieval (cos): " + ", ".join(
        f"R@{k} {cos[f'R@{k}']:.3f} (chance {cos[f'chance_R@{k}']:.3f})" for k in (1, 2, 5, 10) if f"R@{k}" in cos))
    print(f"feature cosine {similarity['voice']['cosine']:.3f} (shuffled pairs {similarity['shuffled']['cosine']:.3f})")
    for name, result in metrics["matching_1_of_2"].items():
        print(f"1:2 matching ({name}): {result['accuracy']:.3f} (chance 0.5, {result['trials']} trials)")
    for name, result in metrics.get("demographics", {}).items():
        voice, upper = result["voice"], result["upper_bound"]
        print(f"{name}: voice-face agrees with true face {voice['agreement']:.3f} (chance {voice['chance']:.3f}; "
              f"from the true feature {upper['agreement']:.3f}; probe accuracy {result['probe_accuracy']:.3f})")


def _evaluate(args: argparse.Namespace) -> int:
    from .report import evaluate_model

    metrics = evaluate_model(args.model, args.data, args.out, decoder_dir=args.decoder, labels=args.labels,
                             label_columns=tuple(args.label_columns.split(",")) if args.label_columns else None,
                             pool=args.pool, seed=args.seed)
    _print_metrics(metrics)
    print(f"{args.out}/metrics.json, {args.out}/report.html")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    metrics = run_demo(args.out, quick=args.quick, seed=args.seed, strength=args.strength, workers=args.workers,
                       progress=not args.quiet)
    _print_metrics(metrics)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from .files import atomic_write, write_json
    from .gallery import Gallery
    from .pipeline import Speech2Face

    model = Speech2Face.from_pretrained(args.model, device=args.device, progress=not args.quiet)
    print(f"model: {model.card.label}")
    gallery = Gallery.load(args.gallery) if args.gallery else None
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    failed, ready = 0, []
    for source in tqdm(args.inputs, desc="read", unit="file", disable=args.quiet or len(args.inputs) < 2):
        try:
            ready.append((source, *model.clips(source)))
        except Speech2FaceError as error:  # a batch job records the bad item and goes on
            print(f"s2f predict: error: {error}", file=sys.stderr)
            failed += 1
    names: set[str] = set()
    for start in range(0, len(ready), args.batch_size):
        chunk = ready[start:start + args.batch_size]
        predictions = model.predict_clips([c for _, c, _ in chunk], [v for _, _, v in chunk])
        for (source, _, _), prediction in zip(chunk, predictions, strict=True):
            stem = Path(source).stem or "input"
            name = stem if stem not in names else f"{stem}-{len(names)}"
            names.add(name)
            atomic_write(out / f"{name}.png", lambda temp, image=prediction.image: image.save(temp, format="PNG"))
            record = {"input": str(source), "image": f"{name}.png", "synthetic": model.card.synthetic,
                      **prediction.to_json()}
            if gallery is not None:
                from PIL import Image

                nearest = gallery.nearest(prediction.feature, args.nearest)
                strip = Image.fromarray(gallery.strip([i for i, _ in nearest]))
                atomic_write(out / f"{name}.nearest.png", lambda temp, image=strip: image.save(temp, format="PNG"))
                record["nearest"] = [{"speaker": gallery.speakers[i], "key": gallery.keys[i], "cosine": round(c, 4)}
                                     for i, c in nearest]
            write_json(out / f"{name}.json", record)
            print(f"{source} -> {out / (name + '.png')} ({prediction.windows} window(s), "
                  f"{prediction.voiced_seconds:.1f} s voiced)")
    print(f"{len(ready)} face(s) in {out}" + (f"; {failed} input(s) failed" if failed else ""))
    return 1 if failed else 0


def _models(args: argparse.Namespace) -> int:
    from .registry import cache_dir, cached_path, entries, user_registry

    for entry in entries().values():
        where = cached_path(entry)
        status = f"cached: {where}" if where else ("built on first use" if entry.build else f"from {entry.url}")
        flag = " [SYNTHETIC]" if entry.synthetic else ""
        print(f"{entry.name}{flag}\n    {entry.description}\n    {status}")
    print(f"cache: {cache_dir()}; more entries: {user_registry()}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"s2f serve: warning: listening on {args.host}: anyone who can reach it can use the model",
              file=sys.stderr)
    serve(args.model, host=args.host, port=args.port, gallery_data=args.gallery, max_upload_mb=args.max_upload_mb,
          max_seconds=args.max_seconds, concurrency=args.concurrency, device=args.device)
    return 0


def _export(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    if args.format == "onnx":
        from .export import export_onnx

        out = export_onnx(args.model, args.out)
        print(f"{out}: input wave (batch, 96000) float32 16 kHz -> image, landmarks, feature")
        return 0
    from .pipeline import Speech2Face
    from .registry import pack

    model = Speech2Face.from_pretrained(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as temp:
        digest = pack(model.save_pretrained(Path(temp) / model.card.name), args.out)
    print(f"{args.out}\nsha256 {digest}\nregistry entry: "
          + json.dumps({model.card.name: {"url": "URL-OF-" + Path(args.out).name, "sha256": digest,
                                          "synthetic": model.card.synthetic}}))
    return 0


def _add_training_options(parser: argparse.ArgumentParser, steps: int, batch_size: int, batch_help: str,
                          eval_help: str) -> None:
    """The options every training verb shares: data, run folder, schedule, checkpoints, device, resume."""
    parser.add_argument("--data", required=True, help="a folder made by s2f prepare")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--steps", type=int, default=steps, help=f"optimiser steps (default {steps})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"{batch_help} (default {batch_size})")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--eval-every", type=int, default=500, help=f"{eval_help} (default 500)")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="checkpoint every N steps (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0,
                        help="data loader processes per training process (default 0: in the process)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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
    synth.add_argument("--face-noise", type=float, default=1.0,
                       help="scale of the face variation no attribute explains (shape noise, skin tone, light); "
                            "lower = easier to learn (s2f demo uses 0.5; default 1)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    synth.add_argument("--portrait", action="append", default=[], metavar="IMAGE",
                       help="an extra base portrait (one face, public domain or yours); repeatable")
    synth.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_synth)

    prep = verbs.add_parser(
        "prepare", help="talking-face videos -> training shards (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn videos into webdataset shards of (6 s speech, aligned face, 68 landmarks, face feature,\n"
                    "metadata), split train/val/test by speaker. Inputs, one of:\n"
                    "  --avspeech CSV --videos DIR   AVSpeech rows ytid,start,end,x,y + videos named <ytid>.*\n"
                    "  --voxceleb2 DIR               DIR/<speaker>/<video>/<clip>.mp4\n"
                    "  --folder DIR                  any videos; speaker from --speaker-from\n"
                    "  --pairs CSV                   rows audio,image,speaker (already cut data)\n"
                    "Segments over 6 s become 6 s windows. Bad items go to OUT/failures.jsonl with a reason.\n"
                    "Rerun the same command after a crash or kill: finished shards are kept, the rest redone.\n"
                    "Several machines: give each --shard-id i --num-shards n (same OUT or not); no overlap.",
        epilog="example: s2f prepare --avspeech world/avspeech.csv --videos world/videos --out shards --workers 2")
    prep.add_argument("--avspeech", metavar="CSV", help="an AVSpeech CSV (ytid,start,end,x,y, no header)")
    prep.add_argument("--videos", metavar="DIR", help="folder of the AVSpeech videos, named <ytid>.<any container>")
    prep.add_argument("--voxceleb2", metavar="DIR", help="a VoxCeleb2 video folder")
    prep.add_argument("--folder", metavar="DIR", help="a folder of talking-face videos")
    prep.add_argument("--pairs", metavar="CSV", help="a CSV of audio,image,speaker")
    prep.add_argument("--out", required=True, help="output folder (shards/, failures.jsonl, splits.json, summaries)")
    prep.add_argument("--speaker-pattern", metavar="REGEX",
                      help="AVSpeech: the speaker is this regex's first group in the ytid (default: the ytid; "
                           "for a synthetic world the part before '_<clip>')")
    prep.add_argument("--speaker-from", choices=("folder", "file"), default="folder",
                      help="--folder: speaker = parent folder name (default) or file name up to '_' or '-'")
    prep.add_argument("--encoder", default="dlib-torch", help="face encoder for the features: dlib-torch (default), "
                                                               "dlib, vggface (needs S2F_VGGFACE_WEIGHTS)")
    prep.add_argument("--detector", default="hog", choices=("hog", "mmod"), help="face detector (default hog: fast)")
    prep.add_argument("--frames", type=int, default=3, help="frames sampled per 6 s window (default 3)")
    prep.add_argument("--shard-size", type=int, default=100, help="segments per shard (default 100)")
    prep.add_argument("--workers", type=int, default=1, help="processes on this machine (default 1)")
    prep.add_argument("--shard-id", type=int, default=0, help="this node's index, for multi-node runs (default 0)")
    prep.add_argument("--num-shards", type=int, default=1, help="number of nodes sharing the manifest (default 1)")
    prep.add_argument("--val", type=float, default=0.1, help="fraction of speakers for validation (default 0.1)")
    prep.add_argument("--test", type=float, default=0.1, help="fraction of speakers for test (default 0.1)")
    prep.add_argument("--split-seed", type=int, default=0, help="seed of the speaker split (default 0)")
    prep.add_argument("--device", default="cpu", help="device of the face encoder (default cpu)")
    prep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(handler=_prepare)

    down = verbs.add_parser(
        "download", help="fetch the videos of an AVSpeech CSV with yt-dlp (needs internet)",
        description="Download every video named in an AVSpeech CSV into OUT as <ytid>.<ext>, with yt-dlp "
                    "(pip install 'speech2face[download]'). Resumable: videos already in OUT are skipped; "
                    "failures go to OUT/download_failures.jsonl and the run goes on.",
        epilog="example: s2f download --avspeech avspeech_test.csv --out videos --rate-limit 2M --sleep 2")
    down.add_argument("--avspeech", required=True, metavar="CSV", help="an AVSpeech CSV (ytid,start,end,x,y)")
    down.add_argument("--out", required=True, help="folder for the videos")
    down.add_argument("--url-template", default="https://www.youtube.com/watch?v={ytid}",
                      help="URL of a video, with {ytid} (default: YouTube)")
    down.add_argument("--rate-limit", metavar="RATE", help="bandwidth cap, e.g. 500K or 2M (bytes/s)")
    down.add_argument("--sleep", type=float, default=1.0, help="seconds between videos (default 1)")
    down.add_argument("--retries", type=int, default=3, help="retries per video (default 3)")
    down.add_argument("--max-height", type=int, default=720, help="highest video resolution (default 720)")
    down.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    down.set_defaults(handler=_download)

    dec = verbs.add_parser(
        "train-decoder", help="train the face decoder (feature -> canonical face) on prepared shards",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the face decoder of Cole et al.: face feature -> landmarks + texture, warped into a\n"
                    "frontal face. Losses: texture L1 (in the mean geometry), landmark MSE, and a perceptual loss\n"
                    "through a differentiable face encoder. OUT gets config.json + model.safetensors, metrics.jsonl,\n"
                    "samples/*.png and eval.json (landmark error, pixel L1, identity cosine, R@1 on held-out\n"
                    "speakers, beside the mean-face baseline and chance). Ctrl-C or a kill: rerun with --resume.",
        epilog="example: s2f train-decoder --data shards --out runs/decoder --steps 2000")
    dec.add_argument("--config", choices=("small", "paper"), default="small",
                     help="small: 64 px, for CPU (default); paper: 224 px")
    dec.add_argument("--perceptual-weight", type=float, default=0.5, help="weight of the perceptual loss (0: off)")
    dec.add_argument("--encoder", default="dlib-torch", help="face encoder of the perceptual loss (default dlib-torch)")
    _add_training_options(dec, steps=2000, batch_size=16, batch_help="faces per step",
                          eval_help="held-out evaluation and sample grid every N steps")
    dec.set_defaults(handler=_train_decoder)

    train = verbs.add_parser(
        "train", help="train the voice encoder (voice -> face feature) with the paper's loss",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the voice encoder on prepared shards through a frozen face decoder, with the paper's\n"
                    "loss: L1 on the decoder's first layer + l1 x normalised-feature distance + l2 x distillation\n"
                    "through the face network's classifier at temperature T. Adam (lr 1e-3, beta1 0.5, eps 1e-4),\n"
                    "lr x0.95 every 10,000 steps, global batch 8 by default. OUT gets config.json +\n"
                    "model.safetensors, best/ (best held-out R@1), metrics.jsonl, eval.json, training_state.pt.\n"
                    "Several processes or GPUs: torchrun --nproc_per_node N --no-python s2f train ...",
        epilog="example: s2f train --data shards --decoder runs/decoder --out runs/voice --steps 5000")
    train.add_argument("--decoder", required=True, help="a run folder of s2f train-decoder (frozen here)")
    train.add_argument("--config", choices=("small", "paper"), default="small", help="voice encoder size")
    train.add_argument("--l1", type=float, default=0.025, help="weight of the normalised-feature term (paper 0.025)")
    train.add_argument("--l2", type=float, default=200.0, help="weight of the distillation term (paper 200)")
    train.add_argument("--temperature", type=float, default=2.0, help="distillation temperature (paper 2)")
    train.add_argument("--distill", choices=("auto", "teacher", "fitted", "none"), default="auto",
                       help="distillation classifier: the teacher's (VGG-Face fc8), one fitted on the training "
                            "identities (for dlib features), or none; auto picks teacher if there is one")
    train.add_argument("--shuffle-buffer", type=int, default=256, help="samples in the shuffle buffer (0: none)")
    train.add_argument("--log-every", type=int, default=20)
    _add_training_options(train, steps=10_000, batch_size=8, batch_help="GLOBAL batch, split among processes",
                          eval_help="held-out evaluation every N steps")
    train.set_defaults(handler=_train)

    ev = verbs.add_parser(
        "evaluate", help="evaluate a voice encoder on held-out speakers: metrics.json + report.html",
        description="Feature similarity, S2F -> face retrieval (pool 100 or all held-out speakers), 1:2 matching "
                    "(and same-attribute controls with --labels), demographic agreement (with --labels), "
                    "craniofacial measures from decoded landmarks; "
                    "each beside chance or a shuffled baseline. One clip per held-out speaker (test and val splits).",
        epilog="example: s2f evaluate --model runs/voice --data shards --out report")
    ev.add_argument("--model", required=True, help="a run folder of s2f train")
    ev.add_argument("--data", required=True, help="a folder made by s2f prepare")
    ev.add_argument("--out", required=True, help="report folder")
    ev.add_argument("--decoder", help="the decoder run (default: the one the model was trained with)")
    ev.add_argument("--labels", help="CSV with speaker_id and attribute columns (a synthetic world's attributes.csv): "
                                     "same-attribute matching controls and demographic agreement (attribute probes "
                                     "fitted on the training speakers' faces)")
    ev.add_argument("--label-columns", help="comma-separated columns of --labels to use (default: those present of "
                                            "masculinity, age, size, gender, sex, age_group, ethnicity)")
    ev.add_argument("--pool", type=int, default=100, help="retrieval pool size (default 100, the paper's)")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(handler=_evaluate)


    predict = verbs.add_parser(
        "predict", help="draw the face behind each recording: PNG + JSON per input",
        description="Any audio or video file (wav, mp3, m4a, flac, ogg, mp4, ...) -> a face image (PNG) and a JSON "
                    "(feature, landmarks, model) in OUTDIR. Up to 6 s: repeated to 6 s; longer: up to 8 windows of "
                    "6 s spread over the recording, their features averaged. Silence and noise are refused. A bad "
                    "input gets one line on stderr, the others are still drawn; the exit code is 1 if any failed.",
        epilog="example: s2f predict voice.wav interview.mp4 --model demo -o faces")
    predict.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio or video files")
    predict.add_argument("--model", default="demo", help="a model folder, a training run, or a registered name "
                                                          "(s2f models; default demo: SYNTHETIC)")
    predict.add_argument("-o", "--output", default="faces", help="output folder (default faces)")
    predict.add_argument("--gallery", help="a s2f prepare folder: also write the nearest real faces "
                                           "(NAME.nearest.png, and their speakers in the JSON)")
    predict.add_argument("--nearest", type=int, default=5, help="faces per gallery strip (default 5)")
    predict.add_argument("--batch-size", type=int, default=16, help="recordings per forward pass")
    predict.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    predict.set_defaults(handler=_predict)

    models = verbs.add_parser(
        "models", help="registered models and where they are cached",
        description="List the models that --model accepts by name. Built in: demo (trained on the synthetic world "
                    "by s2f demo --quick on first use). Add your own in the JSON file named at the end of the "
                    'listing: {"NAME": {"url": "https://.../model.tar.gz", "sha256": "...", "description": "..."}} '
                    "(make the archive and its sha256 with s2f export --format tar). Downloads are checked against "
                    "the sha256 and cached; cached models work offline.",
        epilog="example: s2f models")
    models.set_defaults(handler=_models)

    from . import serve as web  # constants only: gradio loads when a server starts

    serve = verbs.add_parser(
        "serve", help="a web page to upload or record a voice and see the face",
        description="Serve a Gradio page for a model: upload or record a voice, see the face (and with --gallery the "
                    "nearest real faces). Binds 127.0.0.1 unless --host says otherwise. Uploads over --max-upload-mb "
                    "are refused, recordings over --max-seconds and non-audio get a one-line message, and each "
                    "upload is deleted once answered. Needs the [demo] extra (gradio).",
        epilog="example: s2f serve --model demo --port 7860")
    serve.add_argument("--model", default="demo", help="a model folder, a run, or a registered name (default demo)")
    serve.add_argument("--host", default=web.DEFAULT_HOST,
                       help=f"address to bind (default {web.DEFAULT_HOST}: this machine only)")
    serve.add_argument("--port", type=int, default=web.DEFAULT_PORT)
    serve.add_argument("--gallery", help="a s2f prepare folder whose faces are shown as the nearest real faces")
    serve.add_argument("--max-upload-mb", type=float, default=web.MAX_UPLOAD_MB,
                       help=f"largest upload in MB (default {web.MAX_UPLOAD_MB:g})")
    serve.add_argument("--max-seconds", type=float, default=web.MAX_SECONDS,
                       help=f"longest recording in seconds (default {web.MAX_SECONDS:g})")
    serve.add_argument("--concurrency", type=int, default=2, help="requests computed at once (default 2)")
    serve.add_argument("--device", help="cpu, cuda ... (default: CUDA if present)")
    serve.set_defaults(handler=_serve)

    export = verbs.add_parser(
        "export", help="a model as ONNX, or as a .tar.gz for a model registry",
        description="--format onnx: one graph from a 6 s 16 kHz wave (batch, 96000) to image, landmarks and "
                    "feature, checked against onnxruntime in the tests (needs onnx). --format tar: a model folder "
                    "as .tar.gz with its sha256 and the registry entry to add (see s2f models --help).",
        epilog="example: s2f export --model demo --format onnx --out demo.onnx")
    export.add_argument("--model", required=True, help="a model folder, a run, or a registered name")
    export.add_argument("--format", choices=("onnx", "tar"), required=True)
    export.add_argument("--out", required=True, help="output file (.onnx or .tar.gz)")
    export.set_defaults(handler=_export)

    demo = verbs.add_parser(
        "demo", help="synth -> prepare -> train-decoder -> train -> evaluate, on a synthetic world",
        description="Run the whole pipeline on a synthetic world it generates; prints each stage and where the "
                    "report is. --quick: about 8 minutes on 2 CPU cores (200 identities); without it about 30 "
                    "minutes (400 identities, longer training). Rerun to resume.",
        epilog="example: s2f demo --quick --out demo")
    demo.add_argument("--out", required=True, help="output folder (world/, data/, decoder/, voice/, report/)")
    demo.add_argument("--quick", action="store_true", help="small world and short training (~8 min on 2 cores)")
    demo.add_argument("--strength", type=float, default=1.0, help="voice-face link of the world (0: control)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--workers", type=int, default=2, help="processes for synth and prepare (default 2)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)
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
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
