"""``wdstudio train``: the spec (given, or suggested from the data and said aloud), a shipped
preprocessing checked against it, and training here or in N torchrun ranks (the launcher never
imports torch), with progress on stderr and Ctrl-C / SIGTERM stopping every process cleanly."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from typing import Any

from studio_core.cli.data import _data_spec, _error, _warn
from studio_core.common.errors import Cancelled, StudioError
from studio_core.common.files import read_text
from studio_core.data.load import load_files, source_paths
from studio_core.data.workspace import Workspace
from studio_core.spec.schema import Spec
from studio_core.training.launcher import LAUNCHED_ENV, launch


def _progress_printer(stream: Any = None, task: str = "binary"):
    stream = stream or sys.stderr
    tty = stream.isatty()
    # regression trains on the standardised label: its loss is not on the RMSE's scale, so say so
    loss_name = "train log loss" if task in ("binary", "multiclass") else "train MSE (standardised label)"

    def show(p: Any) -> None:
        if p.kind == "step" and tty:
            frac = p.step / max(p.total_steps, 1)
            bar = "#" * int(frac * 24)
            stream.write(f"\repoch {p.epoch}/{p.epochs} [{bar:<24}] {frac:4.0%} loss {p.train_loss:.4f} {p.rows_per_s / 1000:.0f}k rows/s ETA {p.eta_s:.0f}s ")
            stream.flush()
        elif p.kind == "epoch":
            val = " ".join(f"{k} {v:.4f}" for k, v in p.val.items() if k != "loss")
            stream.write(("\r" if tty else "") + f"epoch {p.epoch}/{p.epochs} {loss_name} {p.train_loss:.4f} | val {val} | {p.rows_per_s / 1000:.0f}k rows/s"
                         + (f" | GPU peak {p.device_memory_gib:.2f} GiB" if p.device_memory_gib is not None else "") + "\n")
            stream.flush()

    return show


def _train_spec(args: argparse.Namespace) -> tuple[Spec, Workspace, list[str]]:
    """The spec to train (given, or suggested from the data) and a workspace with the data."""
    from studio_core.features.suggest import suggest
    from studio_core.runs.results import suggestion_lines

    base = None
    if args.spec:
        base = Spec.from_json(read_text(args.spec, "--spec"))
    if getattr(args, "preprocessing", None):
        read_text(args.preprocessing, "--preprocessing")  # refused before the data is read or a spec suggested
    paths = args.data or [f"{k}={v}" for k, v in (base.data.sources.items() if base else [])]
    if not paths:
        raise StudioError("no data given; pass --data PATH (or a spec with data.sources)")
    ws, tables, notes = load_files(paths, large=True)
    if not os.environ.get(LAUNCHED_ENV):  # the launcher has printed them once already
        _warn(notes)
    if base is None:
        data = _data_spec(args, tables)
        talk = not getattr(args, "quiet", False) and not os.environ.get(LAUNCHED_ENV)
        if talk:
            print(f"no --spec given: suggesting features for {data.label!r} from table {data.table or tables[0]!r}…", file=sys.stderr, flush=True)
        suggested = suggest(ws, data)
        if talk:
            print("\n".join(f"  {line}" for line in suggestion_lines(suggested)), file=sys.stderr, flush=True)
        spec = suggested.spec
    else:
        spec = base
        spec.data = _data_spec(args, tables, base.data)
    spec.data.sources = source_paths(tables, paths)
    if args.epochs is not None:
        spec.train.epochs = args.epochs
    if getattr(args, "max_minutes", None) is not None:
        spec.train.max_minutes = args.max_minutes
    if args.device:
        spec.train.device = args.device
    return spec, ws, paths


def _read_json(path: str, option: str) -> dict[str, Any]:
    text = read_text(path, option)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StudioError(f"cannot read {option} {path} ({exc.__class__.__name__}); pass the JSON file it names") from None


def _check_nproc(n: int) -> None:
    cores = os.cpu_count() or 1
    if n < 0:
        raise StudioError(f"--nproc {n} is not a number of processes; pass 1 or more")
    if n > cores:
        raise StudioError(f"--nproc {n} is more than this machine's {cores} CPU cores; pass at most {cores} "
                          "(more processes than cores only slow training down)")


def _shipped_preprocessing(args: argparse.Namespace, spec: Spec) -> dict[str, Any] | None:
    """``--preprocessing``: a fitted state that must belong to ``spec`` (same label, task and
    features), or None to fit here."""
    if not args.preprocessing:
        return None
    from studio_core.features.preprocess import Preprocessor

    state = _read_json(args.preprocessing, "--preprocessing")
    try:
        prep = Preprocessor.from_state(state)
    except Exception as exc:  # noqa: BLE001 - any malformed state: one message naming the file
        raise StudioError(f"--preprocessing {args.preprocessing} is not a preprocess.json written by wdstudio "
                          f"({type(exc).__name__}: {str(exc)[:80]}); pass the preprocess.json of a run") from None
    d = spec.data
    theirs, ours = (prep.label, prep.task, dataclasses.asdict(prep.features)), (d.label, d.task, dataclasses.asdict(spec.features))
    if theirs != ours:
        what = [n for n, a, b in zip(("label", "task", "features"), theirs, ours) if a != b]
        raise StudioError(f"--preprocessing {args.preprocessing} was fitted for another spec (its {', '.join(what)} differ); "
                          "pass the spec.json it was fitted with, or leave --preprocessing out to fit it here")
    return state


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so every ``finally`` and ``with`` cleans up.
    Not a KeyboardInterrupt: CPython gives those special treatment at exit (a process once
    printed its error line and then died by SIGINT)."""


def _raise_terminated(*_: object) -> None:
    raise Terminated


def cmd_train(args: argparse.Namespace) -> int:
    """SIGTERM / SIGHUP stop training like Ctrl-C: through every cleanup (block files, the
    DuckDB spill folder, the launcher's folder) and with an ``error:`` line.  A torchrun rank
    instead exits 143 on SIGTERM (torchrun stops the other ranks so when one fails), also
    through the cleanup."""
    from studio_core.runs.folder import check_out_dir

    rank = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if not rank:  # the launcher (or one process) checks; rank 0 writes
        _check_nproc(args.nproc)
        check_out_dir(args.out)
        if getattr(args, "seeds", 1) < 1:
            raise StudioError(f"--seeds {args.seeds} is not a number of seeds; pass 1 or more")
        if (getattr(args, "ablations", False) or getattr(args, "seeds", 1) > 1) and args.nproc and args.nproc > 1:
            raise StudioError("--ablations and --seeds train their runs in this process; leave out --nproc (or train them with --nproc "
                              "and compare them with `wdstudio compare`)")
        from studio_core.cli.track import mlflow_target

        args.mlflow_uri = mlflow_target(args)  # a store that cannot be used is refused before training
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM,) if rank else (signal.SIGTERM, signal.SIGHUP):
            handlers[sig] = signal.signal(sig, (lambda *_: sys.exit(143)) if rank else _raise_terminated)
    try:
        return _launch(args) if args.nproc and args.nproc > 1 else _train_here(args)  # the launcher never imports torch
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)


def _warm_imports() -> None:
    """Import torch (and the optimiser's torch._dynamo) and scikit-learn's metrics: about 5 s of
    a Python's start, done in a thread while the main one reads the data and suggests a spec
    in DuckDB (which releases the GIL).  An import that fails here fails again, with its
    message, where it is used."""
    try:
        import sklearn.metrics  # noqa: F401
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001 -- reported by the main thread's own import
        pass


def _train_here(args: argparse.Namespace) -> int:
    warm = threading.Thread(target=_warm_imports, name="wdstudio-imports", daemon=True)
    warm.start()
    spec, ws, _paths = _train_spec(args)
    warm.join()
    from studio_core.runs.train import train
    from studio_core.training.distributed import ranks_from_env, stop

    ranks = ranks_from_env()
    preprocessing = _shipped_preprocessing(args, spec)
    main_rank = ranks is None or ranks.is_main
    stop_event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop_event.set()) if threading.current_thread() is threading.main_thread() and ranks is None else None
    printer = _progress_printer(task=spec.data.task)
    if ranks is not None:  # rank 0 prints: its rate times the ranks (their shards differ by a row or so)
        world, show = ranks.world, printer
        printer = lambda p: show(dataclasses.replace(p, rows_per_s=p.rows_per_s * world))  # noqa: E731
    try:
        outcome = train(spec, ws, args.out, [] if args.quiet or not main_rank else [printer], stop_event, ranks, preprocessing)
    except Cancelled:
        raise StudioError("training interrupted; nothing was written") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        stop()
    if not main_rank:
        return 0
    for note in outcome.metrics.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    from studio_core.runs.results import result_line

    print(result_line(outcome.run_dir, outcome.metrics))
    dirs = [outcome.run_dir]
    if getattr(args, "ablations", False) or getattr(args, "seeds", 1) > 1:
        dirs = _more_runs(args, spec, ws, outcome.run_dir)
    from studio_core.cli.track import log_runs

    log_runs(args, getattr(args, "mlflow_uri", None), dirs)
    return 0


def _more_runs(args: argparse.Namespace, spec: Spec, ws: Any, run_dir: Any) -> list[str]:
    """``--ablations`` and ``--seeds N``: the spec's wide-only and deep-only variants and/or more
    training seeds (the same split: only ``train.seed`` changes), trained beside the run as
    RUN[.wide-only|.deep-only][.seed-K]; then the leaderboard of them all."""
    from studio_core.compare.ablations import ablation_specs
    from studio_core.compare.leaderboard import leaderboard
    from studio_core.runs.folder import check_out_dir
    from studio_core.runs.results import result_line
    from studio_core.runs.train import train

    variants = {"": spec}
    if args.ablations:
        found = ablation_specs(spec)
        if not found:
            _warn(["--ablations: the spec does not have both a wide and a deep part; nothing to ablate"])
        variants.update(found)
    base, dirs = str(args.out).rstrip("/"), []
    for name, variant in variants.items():
        for k in range(max(1, args.seeds)):
            if not name and not k:
                dirs.append(str(run_dir))
                continue
            seeded = Spec.from_dict(variant.to_dict())
            seeded.train.seed = spec.train.seed + k
            out = base + (f".{name}" if name else "") + (f".seed-{k + 1}" if k else "")
            check_out_dir(out)
            if not args.quiet:
                print(f"training {name or 'the spec'} with training seed {seeded.train.seed} into {out}…", file=sys.stderr, flush=True)
            done = train(seeded, ws, out)
            print(result_line(done.run_dir, done.metrics))
            dirs.append(str(done.run_dir))
    if len(dirs) > 1:
        print("\n".join(leaderboard(dirs).lines()))
    return dirs


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N``: validate and fit the preprocessing here, once, then run N ranks with
    torchrun on this machine, shipping the spec and the fitted state to every rank as JSON.
    A rank's ``error: …`` line is passed on as this command's one error line."""
    from studio_core.features.prepare import check_processes, fit_preprocessor, prepare  # no torch in this process: the ranks load it
    from studio_core.features.preprocess import Preprocessor

    spec, ws, paths = _train_spec(args)
    check_processes(spec, int(args.nproc))
    shipped = _shipped_preprocessing(args, spec)
    split, _streaming = prepare(spec, ws, int(args.nproc))  # validates the spec against the data
    prep = Preprocessor.from_state(shipped) if shipped else fit_preprocessor(spec, split)
    ws.con.close()
    code, cause = launch(spec.to_json(), prep.to_json(), paths, int(args.nproc), args.out, args.quiet)
    if code:
        if not cause:
            raise StudioError(f"training with {args.nproc} processes failed (torchrun exit status {code}); "
                              "run it with --nproc 1 to see the problem")
        _error(cause)
        return 1 if cause.startswith("internal error") else 2
    from studio_core.cli.track import log_runs

    log_runs(args, getattr(args, "mlflow_uri", None), [args.out])
    return 0
