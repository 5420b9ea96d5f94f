"""Training verbs: `s2f train-decoder` and `s2f train` (both also under torchrun)."""

from __future__ import annotations

import argparse

from ..models import VOICE_BACKBONES
from ..models.speaker_voice import BACKBONE_LR_SCALE
from ..train import train_decoder, train_voice
from ..train.decoder import DecoderTraining
from ..train.voice import DISTILL_CHOICES, VoiceTraining
from .common import add_training_options, default_of, setting, settings_from


def train_decoder_verb(args: argparse.Namespace) -> int:
    result = train_decoder(args.data, args.out, settings_from(args, DecoderTraining), resume=args.resume,
                           progress=not args.quiet)
    held = result.get("held_out")
    if held:  # rank 0 only
        print(f"{args.out}: face decoder, step {result['step']}; held-out speakers: {held['faces']['speakers']} "
              f"({held['faces']['count']} faces)")
        print(f"{'':<12}{'landmarks %IOD':>16}{'pixel L1':>10}{'id cosine':>11}{'R@1':>7}{'chance':>8}")
        for name in ("decoder", "mean_face"):
            row = held[name]
            print(f"{name:<12}{row['landmark_error_iod_pct']:>16.2f}{row['pixel_l1']:>10.1f}"
                  f"{row['identity_cosine']:>11.3f}{row['R@1']:>7.2f}{row['chance_R@1']:>8.2f}")
    return 0


def register_train_decoder(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "train-decoder", help="train the face decoder (feature -> canonical face) on prepared shards",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the face decoder of Cole et al.: face feature -> landmarks + texture, warped into a\n"
                    "frontal face. Losses: texture L1 (in the mean geometry), landmark MSE, and a perceptual loss\n"
                    "through a differentiable face encoder. OUT gets config.json + model.safetensors, metrics.jsonl,\n"
                    "samples/*.png and eval.json (landmark error, pixel L1, identity cosine, R@1 on held-out\n"
                    "speakers, beside the mean-face baseline and chance). Ctrl-C or a kill: rerun with --resume.\n"
                    "Several processes or GPUs: torchrun --nproc_per_node N --no-python s2f train-decoder ...",
        epilog="example: s2f train-decoder --data shards --out runs/decoder --steps 2000")
    setting(parser, "--perceptual-weight", DecoderTraining, "weight of the perceptual loss (0: off)")
    setting(parser, "--encoder", DecoderTraining, "face encoder of the perceptual loss (dlib-torch, facenet, vggface)")
    setting(parser, "--flip", DecoderTraining, "augmentation: probability of a mirrored training face (its feature "
                                               "recomputed by the teacher)")
    setting(parser, "--morph", DecoderTraining, "augmentation: probability of a same-sex morph of two training faces "
                                                "(a new identity; photos of known sex only)")
    setting(parser, "--colour", DecoderTraining, "augmentation: probability of a brightness/contrast/saturation jitter")
    parser.add_argument("--no-decay", dest="decay", action="store_false", default=default_of(DecoderTraining, "decay"),
                        help="a constant learning rate (default: a cosine decay to 1 %% over --steps)")
    add_training_options(parser, DecoderTraining, batch_help="GLOBAL batch of faces per step, split among processes",
                         eval_help="held-out evaluation and sample grid every N steps", several_data=True,
                         sizes={"small": "64 px", "medium": "128 px, CPU-trainable on photos", "paper": "224 px"})
    parser.set_defaults(handler=train_decoder_verb)


def train_verb(args: argparse.Namespace) -> int:
    result = train_voice(args.data, args.decoder, args.out, settings_from(args, VoiceTraining), resume=args.resume,
                         progress=not args.quiet)
    held = result.get("held_out")
    if held:  # rank 0 only
        print(f"{args.out}: voice encoder ({result['voice_backbone']} backbone), step {result['step']}, "
              f"distillation: {result['distill']}")
        print(f"held-out ({held['pool']} clips): cosine {held['cosine']:.3f} (shuffled {held['chance_cosine']:.3f}); "
              + ", ".join(f"R@{k} {held[f'R@{k}']:.2f} (chance {held[f'chance_R@{k}']:.2f})" for k in (1, 2, 5, 10)))
    return 0


def register_train(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "train", help="train the voice encoder (voice -> face feature) with the paper's loss",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the voice encoder on prepared shards through a frozen face decoder, with the paper's\n"
                    "loss: L1 on the decoder's first layer + l1 x normalised-feature distance + l2 x distillation\n"
                    "through the face network's classifier at temperature T. Adam (lr 1e-3, beta1 0.5, eps 1e-4),\n"
                    "lr x0.95 every 10,000 steps, global batch 8 by default. OUT gets config.json +\n"
                    "model.safetensors, best/ (best held-out R@1), metrics.jsonl, eval.json, training_state.pt.\n"
                    "Several processes or GPUs: torchrun --nproc_per_node N --no-python s2f train ...",
        epilog="example: s2f train --data shards --decoder runs/decoder --out runs/voice --steps 5000")
    parser.add_argument("--decoder", required=True, help="a run folder of s2f train-decoder (frozen here)")
    setting(parser, "--l1", VoiceTraining, "weight of the normalised-feature term (the paper's lambda_1)",
            field="norm_weight")
    setting(parser, "--l2", VoiceTraining, "weight of the distillation term (the paper's lambda_2)",
            field="distill_weight")
    setting(parser, "--temperature", VoiceTraining, "distillation temperature (the paper's T)")
    setting(parser, "--distill", VoiceTraining, "distillation classifier: the teacher's (VGG-Face fc8), one fitted on "
                                                "the training identities (for dlib features), or none; auto picks "
                                                "teacher if there is one", choices=DISTILL_CHOICES)
    setting(parser, "--voice-backbone", VoiceTraining, "paper: the paper's CNN on spectrograms, learnt from scratch; "
                                                      "speaker: a pretrained speaker encoder (Resemblyzer's GE2E, "
                                                      "trained on thousands of real voices) + an MLP head, better "
                                                      "with few speakers", choices=VOICE_BACKBONES)
    setting(parser, "--finetune-backbone", VoiceTraining, "with --voice-backbone speaker: train the speaker "
                                                          f"encoder too, at {BACKBONE_LR_SCALE:g} x --lr (else frozen)")
    setting(parser, "--fit-head", VoiceTraining, "with --voice-backbone speaker: set the head before the first step to "
                                                 "the ridge regression of the training clips' face features on their "
                                                 "d-vectors (strength by 5-fold cross-validation over the training "
                                                 "speakers); with --steps 0 that map is the model")
    add_training_options(parser, VoiceTraining, batch_help="GLOBAL batch, split among processes",
                         eval_help="held-out evaluation every N steps",
                         sizes={"small": "CPU-sized encoder", "paper": "the paper's widths"})
    parser.set_defaults(handler=train_verb)
