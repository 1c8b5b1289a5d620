"""Command line: ``python -m fer_utils {info,train,resume-file,pack,evaluate,compare,defaults,card,ensemble,export,correct-priors,reproduce,predict,video,corpus} ...`` (``--help`` on each).

One name per concept in every command: ``--model PATH`` is a model file, ``--data`` the faces (FER2013, a labelled
face collection or ``synthetic``), ``--split`` and ``--tta`` what is scored, ``--out`` what is written, ``--json``
the result as JSON alone on standard output. ``train`` names the network's architecture ``--arch``.

Commands that need Keras (TensorFlow) or pandas import them inside: ``predict`` and every ``--help`` start without
either, ``info`` and ``video`` without TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from fer_utils.collection import CONVENTIONS, summary
from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS
from fer_utils.data import load_data, report_split
from fer_utils.detector import DEFAULT_DETECTOR, DETECTORS, LIVE_DETECTOR
from fer_utils.images import read_image
from fer_utils.litert import litert_path
from fer_utils.loader import FERData, FERDataError, find_dataset, pack
from fer_utils.recipe import FINE_TUNING, Recipe, fine_tuning, flag
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.shipped import (
    DEFAULT_NETWORK,
    LIVE_NETWORK,
    check_model_file,
    default_model_path,
    read_info,
    shipped_models,
)

# ----------------------------------------------------------------------------------------------- data


def _load_data(args) -> FERData:
    """``--data`` of any command, through :func:`fer_utils.data.load_data`, with the collection flags
    (``--labels``, ``--convention``, ``--report-skipped``, ``--crops``) and ``--synthetic-size`` where the command
    has them."""
    return load_data(args.data, getattr(args, "labels", None), convention=getattr(args, "convention", None),
                     report_skipped=getattr(args, "report_skipped", None), crops=getattr(args, "crops", False),
                     synthetic_size=getattr(args, "synthetic_size", 3500))


def _split_of(args, data: FERData) -> str | None:
    """``--split``, else the split a report is on (:func:`fer_utils.data.report_split`)."""
    return args.split or report_split(data)


def _tta_text(args) -> str:
    return f", {args.tta} TTA" if args.tta else ""


# ----------------------------------------------------------------------------------------------- commands: data


def cmd_info(args) -> int:
    from fer_utils.audit import find_duplicates  # pandas: only the commands that tabulate import it

    data = _load_data(args)
    table = data.counts()
    dup = find_duplicates(data)
    if args.json:
        record = {"source": data.source, "counts": table.to_dict(), "duplicates": dup.summary()}
        print(json.dumps(record, indent=1), file=args.stdout)
    else:
        print(f"{data.label}: {len(data)} faces")
        print(table.to_string())
        print(dup.describe())
    return 0


def cmd_pack(args) -> int:
    data = _load_data(args)
    out = pack(data, args.out)
    print(f"packed {len(data)} faces of {data.label} into {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


# ----------------------------------------------------------------------------------------------- commands: training


def cmd_train(args) -> int:
    # Keras: only the commands that need it import TensorFlow
    from fer_utils.card import fine_tuning_text, write_card
    from fer_utils.training import train

    if args.init:
        check_model_file(args.init)  # before the data, as in evaluate
    data = _load_data(args)
    if args.init:  # fine-tuning: the network of the model it starts from and, on a collection, a short schedule
        given = {name: getattr(args, name) for name in args.recipe_flags_given}
        recipe = fine_tuning(args.init, schedule=None if data.collection is not None else {}, **given)
    else:
        recipe = Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)})
    info = train(recipe, data, args.out, verbose=args.verbose)
    print(f"saved {args.out}: accuracy {info['val_accuracy']:.4f} on {info['val_split']}, which chose epoch "
          f"{info['best_epoch']}; {info['train_seconds'] / 60:.1f} min")
    if data.collection is not None:  # the report on the hold-out, before and after: the card measures and keeps it
        card = write_card(args.out, data)
        print(fine_tuning_text(card))
        print(f"wrote its card {Path(args.out).with_suffix('.md')} (and .json); its network for the recognizer: "
              f"{litert_path(args.out)}")
    return 0


def cmd_resume_file(args) -> int:
    from fer_utils.training import write_resume  # Keras: only the commands that need it import TensorFlow

    path = write_resume(args.out)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): commit it; the same train command resumes from it "
          "in a fresh clone, and deletes it when the run ends")
    return 0


# ----------------------------------------------------------------------------------------------- commands: scores


def cmd_evaluate(args) -> int:
    # Keras: only the commands that need it import TensorFlow
    from fer_utils.evaluation import evaluate
    from fer_utils.models import load_model

    model = load_model(args.model)  # before the data: a wrong model path fails at once, not after loading FER2013
    data = _load_data(args)
    split = _split_of(args, data)
    if args.corruptions:
        return _print_corruptions(args, model, data, split)
    result = evaluate(model, data, split, tta=args.tta or False) | {"model": args.model}
    if args.json:
        print(json.dumps(result, indent=1), file=args.stdout)
        return 0
    _print_report(result, f"{args.model} on {split or 'every face'} of {data.label}", args.tta)
    return 0


def _print_report(result: dict, title: str, tta: str | None = None) -> None:
    """:func:`fer_utils.evaluation.evaluate`'s result as text: the same lines for FER2013 and for a collection."""
    low, high = result["accuracy_ci"]
    over = f" over its {len(result['emotions'])} emotions" if "collection" in result else ""
    print(f"{title} (n={result['n']}{f', {tta} TTA' if tta else ''}): accuracy {result['accuracy']:.4f} "
          f"(95% CI {low:.4f}-{high:.4f}), macro-F1 {result['macro_f1']:.4f}{over}")
    for e, m in result["per_emotion"].items():
        print(f"  {e:9s} precision {m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1-score']:.3f} n={int(m['support'])}")
    print("confusion matrix (rows: true emotion, columns: the model's answer)")
    print(" " * 11 + " ".join(f"{e:>8s}" for e in EMOTIONS))
    for e, row in zip(result["emotions"], result["confusion_matrix"], strict=True):
        print(f"  {e:9s}" + " ".join(f"{v:8d}" for v in row))
    if "collection" in result:
        print(summary(result["collection"]))


def _print_corruptions(args, model, data, split) -> int:
    from fer_utils.evaluation import evaluate_corruptions  # Keras: only the commands that need it import TensorFlow

    result = evaluate_corruptions(model, data, split, tta=args.tta or False) | {"model": args.model}
    if args.json:
        print(json.dumps(result, indent=1), file=args.stdout)
        return 0
    print(f"{args.model} on {split or 'every face'} of {data.label} (n={result['n']}{_tta_text(args)}):")
    for name, acc in result["accuracy"].items():
        print(f"  {name:12s} accuracy {acc:.4f}")
    print(f"  mean under the corruptions {result['mean']:.4f} = {result['relative']:.1%} of clean")
    return 0


def cmd_compare(args) -> int:
    # Keras: only the commands that need it import TensorFlow
    from fer_utils.evaluation import compare, paired_text
    from fer_utils.models import load_model

    model, against = load_model(args.model), load_model(args.against)  # before the data, as in evaluate
    data = _load_data(args)
    split = _split_of(args, data)
    result = compare(model, against, data, split, tta=args.tta or False) | {"model": args.model, "against": args.against}
    if args.json:
        print(json.dumps(result, indent=1), file=args.stdout)
        return 0
    print(f"{args.model} against {args.against} on {split or 'every face'} of {data.label} (n={result['n']}"
          f"{_tta_text(args)}):")
    print("  " + paired_text(result, Path(args.model).stem, Path(args.against).stem))
    print(f"  macro-F1 {result['macro_f1']:.4f} vs {result['against_macro_f1']:.4f}")
    return 0


def cmd_defaults(args) -> int:
    # Keras: only the commands that need it import TensorFlow
    from fer_utils.evaluation import choose_defaults, paired_text

    models = shipped_models()
    data = _load_data(args)
    datasets = {"PublicTest": data.split("PublicTest")} | {Path(c).name: load_data(c) for c in args.collection}
    result = choose_defaults(models, datasets, tta=args.tta or False)
    if args.json:
        print(json.dumps(result, indent=1), file=args.stdout)
        return 0
    print(f"the rule for a default on {', '.join(f'{d} (n={n})' for d, n in result['datasets'].items())}"
          f"{_tta_text(args) or ', no TTA (as the recognizer answers)'}; accuracy and macro-F1:")
    for name, by_data in result["scores"].items():
        print(f"  {name:16s} " + "  ".join(f"{d} {s['accuracy']:.4f} {s['macro_f1']:.3f}" for d, s in by_data.items()))
    for use, now, what in (("photo", DEFAULT_NETWORK, "photos and videos"), ("live", LIVE_NETWORK, "the live webcam")):
        costs = ", ".join(f"{n} {mflops:.0f}" for n, mflops in sorted(result["mflops"].items(), key=lambda x: x[1]))
        print(f"{what}: from the cheapest up (MFLOPs a face: {costs})")
        for step in result[use]["steps"]:
            print(f"  {step['candidate']} against {step['serving']}: {'replaces it' if step['replaces'] else 'does not'}")
            for d, c in step["comparisons"].items():
                print(f"    {d}: {paired_text(c, step['candidate'], step['serving'])}")
        print(f"  -> {result[use]['model']} serves {what} (the package's default now: {now})")
    return 0


# ----------------------------------------------------------------------------------------------- commands: models


def cmd_card(args) -> int:
    from fer_utils.card import write_card  # Keras: only the commands that need it import TensorFlow

    check_model_file(args.model)  # before the data: a wrong model path fails at once, not after loading FER2013
    ablation = json.loads(Path(args.ablation).read_text()) if args.ablation else None
    against = check_model_file(args.against) if args.against else None
    card = write_card(args.model, _load_data(args), args.split, ablation, against)
    r = card["results"]
    print(f"wrote the card of {args.model}: {card['split']} accuracy {r['plain']['accuracy']:.4f} "
          f"(flip TTA {r['tta']['accuracy']:.4f}, flip and shift TTA {r['tta_shift']['accuracy']:.4f}), "
          f"macro-F1 {r['plain']['macro_f1']:.4f}")
    return 0


def cmd_ensemble(args) -> int:
    from fer_utils.models import save_ensemble  # Keras: only the commands that need it import TensorFlow

    if args.compare:
        return _print_ensembles(args)
    if args.out is None:
        raise ValueError("ensemble needs --out (where to save the average, e.g. models/vgg8x2_resnet.keras), or --compare to "
                         "score every average of the members first")
    info = save_ensemble(args.members, args.out)
    print(f"saved {args.out}: the average of {', '.join(info['members'])} ({info['params']:,} parameters, "
          f"{info['flops'] / 1e6:.0f} MFLOPs per face)")
    return 0


def _print_ensembles(args) -> int:
    import pandas as pd  # pandas: only the commands that tabulate import it

    from fer_utils.evaluation import compare_ensembles  # Keras: only the commands that need it import TensorFlow

    members = {Path(m).stem: check_model_file(m) for m in args.members}  # before the data, as in evaluate
    against = check_model_file(args.against) if args.against else default_model_path()
    data = _load_data(args)
    split = _split_of(args, data)
    table = compare_ensembles(members, data, split, tta=args.tta or False, against=against)
    print(f"every average of {len(members)} models on {split or 'every face'} of {data.label} (n={table['n'].iloc[0]}"
          f"{_tta_text(args)}); vs_best_member and vs_against: points of accuracy against its best member and against "
          f"{against.stem}, paired on the same faces, with McNemar's p:")
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print(table.drop(columns="n").round({"MFLOPs": 0, "train_hours": 2, "accuracy": 4, "macro_f1": 4,
                                             "disgust_recall": 3, "vs_best_member": 2, "vs_best_member_p": 3,
                                             "vs_against": 2, "vs_against_p": 3}).to_string())
    return 0


def cmd_export(args) -> int:
    from fer_utils.models import export_litert, load_model  # Keras: only the commands that need it import TensorFlow

    out = export_litert(load_model(args.model), args.out or litert_path(args.model))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {args.model} for LiteRT, which the recognizer runs")
    return 0


def cmd_correct_priors(args) -> int:
    # Keras: only the commands that need it import TensorFlow
    from fer_utils.models import correct_priors, load_model, save_model

    model = load_model(args.model)  # before the data, as in evaluate
    train_part = _load_data(args).split("Training")
    prior = np.bincount(train_part.emotions, minlength=len(EMOTIONS)) / len(train_part)
    info = read_info(args.model) | {"prior_correction": {"tau": args.tau, "prior": prior.tolist()}}
    save_model(correct_priors(model, prior, args.tau), args.out, info)
    print(f"saved {args.out}: {args.model} with probabilities divided by the Training emotion shares ** {args.tau}")
    return 0


def cmd_reproduce(args) -> int:
    from fer_utils.card import reproduce  # Keras: only the commands that need it import TensorFlow

    if args.data is None:
        args.data = find_dataset()
        if args.data is None:
            raise FileNotFoundError(f"reproduce needs the real FER2013. {DOWNLOAD_HINT}")
    reproduce(args.models, _load_data(args), args.out)
    return 0


# ----------------------------------------------------------------------------------------------- commands: faces


def cmd_predict(args) -> int:
    recognizer = EmotionRecognizer(args.model, args.detector, largest_only=args.largest_only,
                                   min_face_size=args.min_face_size)
    results = {path: [f.as_dict() for f in recognizer.predict(read_image(path))] for path in args.images}
    if args.json:
        print(json.dumps(results, indent=1), file=args.stdout)
        return 0
    for path, faces in results.items():
        print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for f in faces:
            top = sorted(f["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            print(f"  box {f['box']}: {f['emotion']} {f['score']:.3f} ({', '.join(f'{e} {p:.3f}' for e, p in top)})")
    return 0


def cmd_video(args) -> int:
    from fer_utils.video import analyze_video  # pandas: only the commands that tabulate import it

    if args.out is None and args.csv is None:
        raise ValueError("nothing to write: pass --out OUT.mp4 and/or --csv OUT.csv (or .parquet)")
    df = analyze_video(args.input, model=args.model, detector=args.detector, out=args.out, table=args.csv,
                       detect_every=args.detect_every, smoothing=args.smoothing, largest_only=args.largest_only,
                       min_face_size=args.min_face_size, progress=not args.quiet)
    frames = int(df["frame"].max()) + 1 if len(df) else 0
    print(f"{args.input}: {len(df)} face rows, {df['face_id'].nunique()} faces tracked"
          f"{f', last face at frame {frames - 1}' if frames else ''}"
          f"{f'; video {args.out}' if args.out else ''}{f'; table {args.csv}' if args.csv else ''}")
    return 0


def cmd_corpus(args) -> int:
    """0 when every video is done, 1 when some failed (their rows in the manifest say why)."""
    from fer_utils.corpus import analyze_corpus  # pandas and Dask: only the corpus command imports them

    segment = {} if args.segment is None else {"segment_s": args.segment}  # else corpus.SEGMENT_S
    result = analyze_corpus(args.inputs, args.out, model=args.model, detector=args.detector, fps=args.fps,
                            every=args.every, min_face_size=args.min_face_size, largest_only=args.largest_only,
                            workers=args.workers, scheduler=args.scheduler, force=args.force,
                            progress=not args.quiet, **segment)
    m = result.manifest
    record = {"out": str(result.out), "videos": len(m), "done": int((m["status"] == "done").sum()),
              "failed": result.failed, "frames_analysed": int(m["frames_analysed"].fillna(0).sum()),
              "hours_of_video": round(float(m["duration_s"].fillna(0).sum()) / 3600, 4),
              "manifest": str(result.out / "manifest.csv"), "summary": str(result.out / "summary.csv"),
              "frames": str(result.out / "frames")}
    if args.json:
        print(json.dumps(record, indent=1), file=args.stdout)
    else:
        print(f"{record['done']} of {record['videos']} videos done ({record['hours_of_video']:.2f} h of video, "
              f"{record['frames_analysed']} frames analysed): {record['frames']}/, {record['manifest']}, "
              f"{record['summary']}")
    if result.failed:
        print(f"{result.failed} of {len(m)} videos failed: see the error column of {result.out / 'manifest.csv'}",
              file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """Every command, group by group: data, training, scores, models, faces, corpora."""
    p = argparse.ArgumentParser(prog="python -m fer_utils", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_data_commands, _training_commands, _score_commands, _model_commands, _face_commands,
                _corpus_command):
        add(sub)
    return p


def _command(sub, name: str, func, help_: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func``."""
    s = sub.add_parser(name, help=help_, description=help_, **kwargs)
    s.set_defaults(func=func)
    return s


def _data_commands(sub) -> None:
    s = _command(sub, "info", cmd_info, "Table 1: faces per emotion and split, and duplicate images")
    _data_arg(s)
    _json_arg(s)

    s = _command(sub, "pack", cmd_pack, "a packed copy of FER2013 (.npz.xz, a third smaller) to carry to a GPU machine")
    _data_arg(s)
    s.add_argument("--out", required=True, help="the packed copy to write, ending in .npz.xz (required)")


def _training_commands(sub) -> None:
    schedule = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in FINE_TUNING.items())
    s = _command(sub, "train", cmd_train, "train a model, or fine-tune one on faces of your own (--init MODEL --data "
                                          "FOLDER); rerun the same command to resume from its checkpoint",
                 epilog="Fine-tuning: with --init, the network (--arch, --arch-kwargs) is the init model's unless "
                        f"given; on a collection of your own faces the schedule is {schedule} unless given (for a few "
                        "hundred faces), a --holdout share of the faces (stratified by emotion; whole people with "
                        "--group-by) chooses the epoch, and train prints the hold-out's accuracy and macro-F1 before "
                        "and after and writes the model's card.")
    _data_arg(s)
    _collection_args(s)
    s.add_argument("--out", required=True, help="the model to write, e.g. models/lenet.keras, with its .tflite beside "
                                                "it; its checkpoint goes to OUT.ckpt/ until the run ends (required)")
    _recipe_args(s)
    s.add_argument("--synthetic-size", type=int, default=3500, help="faces of --data synthetic (default 3500)")
    s.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2],
                   help="0 silent, 1 progress bar, 2 one line per epoch (default 2)")

    s = _command(sub, "resume-file", cmd_resume_file, "a run's checkpoint as one small file to commit, to resume it in "
                                                      "another session (bfloat16 weights and optimizer state)")
    s.add_argument("--out", required=True, help="the --out of the run, e.g. models/resnet.keras; writes "
                                                "OUT.resume.npz beside it (required)")


def _score_commands(sub) -> None:
    s = _command(sub, "evaluate", cmd_evaluate, "accuracy, macro-F1, per-emotion metrics and confusion matrix, on "
                                                "FER2013 or any labelled face collection")
    _model_arg(s)
    _scored_data_args(s)
    s.add_argument("--corruptions", action="store_true",
                   help="accuracy under each fixed, seeded corruption (blur, jpeg, light, contrast, gamma, noise, "
                        "rotation, scale and crop) and their mean relative to clean faces")
    _json_arg(s)

    s = _command(sub, "compare", cmd_compare, "two models on the same faces: the accuracy difference with a paired "
                                              "bootstrap interval, McNemar's exact test, and the macro-F1 difference")
    _model_arg(s, "model A, a .keras file (required)")
    s.add_argument("--against", required=True, metavar="MODEL", help="model B, a .keras file; the difference is A's "
                                                                     "minus B's (required)")
    _scored_data_args(s)
    _json_arg(s)

    s = _command(sub, "defaults", cmd_defaults, "apply the rule for a default to the shipped models: from the cheapest "
                                                "up, a costlier one serves only where paired tests show a gain beyond "
                                                "noise on PublicTest or a collection and no loss beyond noise on any")
    _data_arg(s)
    s.add_argument("--collection", action="append", default=[], metavar="FOLDER",
                   help="a development collection of labelled faces, as for --data; repeat for several (default none)")
    _tta_arg(s)
    _json_arg(s)


def _model_commands(sub) -> None:
    s = _command(sub, "card", cmd_card, "evaluate a trained model and write its model card (MODEL's .md and .json)")
    _model_arg(s)
    _data_arg(s)
    _split_arg(s, "default: PublicTest; for a model trained on a collection, its hold-out")
    s.add_argument("--ablation", metavar="FILE", help="a JSON file: a list of rows for the card's ablation table")
    s.add_argument("--against", metavar="MODEL", help="the .keras model this one was meant to replace: the card "
                                                      "carries their paired comparison on the same faces")

    s = _command(sub, "ensemble", cmd_ensemble, "average saved models into one .keras model (then `card` it), or "
                                                "--compare every average of them")
    s.add_argument("members", nargs="+", metavar="MODEL", help="two or more .keras models")
    s.add_argument("--out", help="the average to write, e.g. models/vgg8_lenet.keras, with its .tflite (needed "
                                 "without --compare)")
    s.add_argument("--compare", action="store_true", help="save nothing: score each member and every average of two "
                   "or more on --split of --data (accuracy, macro-F1, MFLOPs, training hours), to choose one")
    _scored_data_args(s)
    s.add_argument("--against", metavar="MODEL", help="with --compare: the model each average is paired against "
                                                      "(default: the photo default, the model it would replace)")

    s = _command(sub, "export", cmd_export, "write a .keras model's .tflite, which the recognizer runs (train, "
                                            "ensemble and card do too)")
    _model_arg(s)
    s.add_argument("--out", help="the .tflite to write (default: beside MODEL; for a model in models/, "
                                 "fer_utils/networks/)")

    s = _command(sub, "correct-priors", cmd_correct_priors, "answer rare emotions more often: divide probabilities "
                                                            "by prior ** tau")
    _model_arg(s)
    s.add_argument("--tau", type=float, required=True, help="0 = unchanged, 1 = full correction; choose on "
                                                            "PublicTest (required)")
    _data_arg(s, "; its Training emotion shares are the prior")
    s.add_argument("--out", required=True, help="the corrected copy of MODEL to write, a .keras file (required)")

    s = _command(sub, "reproduce", cmd_reproduce, "retrain every carded model from its recipe and compare with its card")
    _data_arg(s, "; reproduce needs the real FER2013, not the synthetic default")
    s.add_argument("--models", default="models", metavar="FOLDER", help="the folder of the cards (default models)")
    s.add_argument("--out", default="runs/reproduce", metavar="FOLDER",
                   help="the folder to write the retrained models and their comparison to (default runs/reproduce)")


def _face_commands(sub) -> None:
    s = _command(sub, "predict", cmd_predict, "faces and emotions in image files")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _recognizer_args(s, DEFAULT_DETECTOR, ": the surest on tightly cropped faces")
    _json_arg(s)

    s = _command(sub, "video", cmd_video, "a video file -> annotated video and a table of faces and emotions over time")
    s.add_argument("input", metavar="IN", help="the video file to read")
    s.add_argument("--out", help="the annotated video to write, .mp4 (default none; --out or --csv needed)")
    s.add_argument("--csv", help="the table of faces to write, .csv or .parquet (default none)")
    _recognizer_args(s, LIVE_DETECTOR, ": 3x Haar's frame rate on a 640x480 face, 56 vs 17 fps on the slowest 2-core "
                                       "CPU we measured, and better with turned faces")
    s.add_argument("--detect-every", type=int, default=1, help="run the detector every N frames, track in between "
                                                               "(default 1)")
    s.add_argument("--smoothing", type=float, default=0.0, help="weight of the past in [0, 1) (default 0 = off)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def _corpus_command(sub) -> None:
    s = _command(sub, "corpus", cmd_corpus, "a corpus of videos -> per-frame tables, a manifest and a summary, on "
                                            "every core or a Dask cluster; a rerun skips what is done")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders (searched recursively), globs, "
                                                              "or CSV lists (a path column; other columns carried)")
    s.add_argument("--out", required=True, metavar="DIR", help="the folder to write frames/<video_id>.parquet, "
                                                               "manifest.csv and summary.csv into")
    _recognizer_args(s, LIVE_DETECTOR, ", as video's")
    sampling = s.add_mutually_exclusive_group()
    sampling.add_argument("--fps", type=float, help="analyse this many frames a second (default: every frame)")
    sampling.add_argument("--every", type=int, default=1, help="analyse every N-th frame (default 1)")
    s.add_argument("--segment", type=float, metavar="SECONDS",
                   help="the longest stretch of video one task analyses (default 20, fer_utils.corpus.SEGMENT_S)")
    s.add_argument("--workers", type=int, help="local single-threaded worker processes (default: one per core)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786 on a trusted "
                                                          "network, or tls:// with Dask's TLS config) instead of a "
                                                          "local cluster")
    s.add_argument("--force", action="store_true", help="redo every video, even those done before")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _json_arg(s)


# ----------------------------------------------------------------------------------------------- shared flags


def _model_arg(s: argparse.ArgumentParser, help_: str = "the model, a .keras file (required)") -> None:
    s.add_argument("--model", required=True, metavar="MODEL", help=help_)


def _data_arg(s: argparse.ArgumentParser, role: str = "") -> None:
    s.add_argument("--data", metavar="DATA", help="FER2013 (a .csv(.gz), .npz.xz or image folder), a labelled face "
                                                  "collection (a folder), or 'synthetic' (default: $FER2013_PATH, "
                                                  f"else data/, else the synthetic default){role}")


def _scored_data_args(s: argparse.ArgumentParser) -> None:
    """The faces a score is on: ``--data`` (with a collection's flags), ``--split`` and ``--tta``."""
    _data_arg(s)
    _collection_args(s)
    _split_arg(s)
    _tta_arg(s)


def _split_arg(s: argparse.ArgumentParser, default: str = "default: PublicTest for FER2013, every face of a "
                                                          "collection") -> None:
    s.add_argument("--split", choices=["Training", "PublicTest", "PrivateTest", "Test"], help=default)


def _tta_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--tta", nargs="?", const="flip", choices=["flip", "shift"],
                   help="test-time augmentation, for every model the command scores (default: none, as the recognizer "
                        "answers): 'flip' (the default of a bare --tta) averages each face with its mirror; 'shift' "
                        "also with both moved 2 px left, right, up and down (10 views)")


def _json_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--json", action="store_true", help="print the result as JSON alone on standard output (the lines "
                                                       "for people go to standard error)")


def _collection_args(s: argparse.ArgumentParser) -> None:
    """The flags of a labelled face collection (fer_utils.collection.load_faces), read by _load_data."""
    s.add_argument("--labels", metavar="FILE", help="a label file (CSV, TSV or 'path label' lines) of the images in "
                                                    "--data; names, or codes in the order of --convention")
    s.add_argument("--convention", choices=list(CONVENTIONS),
                   help="the order of numeric codes: fer2013 (0-6 = angry, disgust, fear, happy, sad, surprise, "
                        "neutral), rafdb (1-7 = surprise, fear, disgust, happy, sad, angry, neutral), affectnet (0-7 = "
                        "neutral, happy, sad, surprise, fear, disgust, angry, contempt)")
    s.add_argument("--report-skipped", metavar="FILE", help="write the images skipped (no face and not shaped like "
                                                            "a face crop, or unreadable) to this CSV")
    s.add_argument("--crops", action="store_true", help="every image is a face crop already (e.g. RAF-DB aligned, "
                                                        "AffectNet): no detection, each whole image resized to 48x48")


def _recipe_args(s: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`fer_utils.recipe.Recipe` (:func:`fer_utils.recipe.flag`: ``model`` is
    ``--arch``), stored under the field's name, with its default and type; ``recipe_flags_given`` says which were
    given (fine-tuning takes the others from the model it starts from and its short schedule)."""
    s.set_defaults(recipe_flags_given=frozenset())
    for f in dataclasses.fields(Recipe):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        help_, named = f.metadata.get("help", ""), {"dest": f.name, "action": _Given}
        if isinstance(default, bool):
            s.add_argument(flag(f), **named, nargs=0, const=True, default=False, help=help_)
            continue
        named["metavar"] = flag(f).lstrip("-").replace("-", "_").upper()  # --arch ARCH, not --arch MODEL
        if isinstance(default, dict):
            s.add_argument(flag(f), **named, type=json.loads, default=default,
                           help=f"{help_} (default {json.dumps(default)})".strip())
        else:
            s.add_argument(flag(f), **named, type=type(default) if default is not None else str, default=default,
                           help=f"{help_} (default {'none' if default is None else default})".strip())


class _Given(argparse.Action):
    """Stores a flag's value (``const`` for a flag without one) and adds its name to ``recipe_flags_given``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.recipe_flags_given = namespace.recipe_flags_given | {self.dest}


def _recognizer_args(s: argparse.ArgumentParser, detector: str = DEFAULT_DETECTOR, why: str = "") -> None:
    s.add_argument("--model", metavar="MODEL", help="a .keras or .tflite model (default: the shipped default the rule "
                                                    "for a default chose, see `defaults`)")
    s.add_argument("--detector", default=detector, choices=DETECTORS,
                   help=f"haar, blazeface (several times faster; faces of 45 px or more) or mtcnn (default {detector}"
                        f"{why})")
    s.add_argument("--largest-only", action="store_true", help="only the largest face of each frame")
    s.add_argument("--min-face-size", type=int, default=40, help="ignore faces smaller than this, in pixels "
                                                                 "(default 40)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fer_utils``; bad input exits 2 with a one-line message, not a traceback."""
    args = build_parser().parse_args(argv)
    args.stdout = sys.stdout  # --json: the JSON alone goes here; every line for people goes to standard error
    try:
        with contextlib.redirect_stdout(sys.stderr if getattr(args, "json", False) else sys.stdout):
            return args.func(args)
    except (FERDataError, FileNotFoundError, ValueError, ImportError) as e:  # the user's input; a bug keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what was written is whole, and the command said what is left to do
        return 130


if __name__ == "__main__":
    sys.exit(main())
