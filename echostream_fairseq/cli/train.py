"""``echostream-train``: train EchoStream with fairseq's own training loop, from a
``configs/train/*.yaml`` recipe.

Examples::

    # the seed's command line: starts, or continues from SAVE_DIR/checkpoint_last.pt if present
    python scripts/train.py --config configs/train/echostream_mini.yaml \\
        --train-manifest data/train_sampled.units.tsv --dev-manifest data/dev_sampled.units.tsv \\
        --save-dir checkpoints_mini --num-workers 0 --batch-size 8

    # after the encoder swap: decoders from an old (StreamSpeech or EchoStream) checkpoint,
    # encoder trained alone for 500 updates, then everything with encoder lr > decoder lr
    echostream-train ... --save-dir checkpoints_swap --init-from old/checkpoint_best.pt \\
        --no-load-encoder --load-decoders --freeze-decoders-updates 500 \\
        --encoder-lr 2e-3 --decoder-lr 5e-4

Any other flag is handed to ``fairseq-train`` unchanged (and wins over the recipe), e.g.
``--max-update 2000`` or ``--save-interval-updates 100``. ``--dry-run`` prints the fairseq
command instead of running it; ``docs/restarts.md`` explains every restart option.
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from echostream_fairseq.checkpoint_safety import check_checkpoint_file
from echostream_fairseq.checkpoints import (atomic_torch_save, load_partial_checkpoint,
                                            remove_stale_temporaries)
from echostream_fairseq.cli.common import (add_log_level_argument, add_run_manifest_arguments,
                                           run_main, setup_logging)
from echostream_fairseq.training import RecipeRun, build_task_and_model
from echostream_fairseq.errors import InputError

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint_last.pt"
# written by --init-from, read by fairseq's --finetune-from-model
INIT_CHECKPOINT = "initial_weights.pt"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--config", type=Path, required=True,
      help="recipe YAML (fairseq hydra sections), e.g. configs/train/echostream_mini.yaml")
    add_run_manifest_arguments(
        parser, save_dir_help="checkpoint folder (default: the recipe's checkpoint.save_dir)")
    a("--num-workers", type=int,
      help="data-loading worker processes (0 = load in the training process)")
    a("--batch-size", type=int,
      help="maximum utterances per batch (on top of the recipe's max_tokens)")
    a("--resume", action=argparse.BooleanOptionalAction, default=True,
      help="continue from SAVE_DIR/checkpoint_last.pt when it exists (default); "
           "--no-resume refuses to start in a folder that already holds one")
    a("--init-from", type=Path,
      help="start a fresh run from parts of this checkpoint (EchoStream, StreamSpeech, plain "
           "or bare state dict, or a shipped model's name); ignored when resuming")
    a("--load-encoder", action=argparse.BooleanOptionalAction, default=False,
      help="with --init-from: load the speech encoder (never from a StreamSpeech Conformer)")
    a("--load-decoders", action=argparse.BooleanOptionalAction, default=True,
      help="with --init-from: load the ASR/ST CTC heads, MT decoder and T2U + unit decoder")
    a("--freeze-decoders-updates", type=int, default=0,
      help="train only the encoder for the first N updates (decoders get no gradient and no "
           "optimizer state)")
    a("--encoder-lr", type=float,
      help="peak learning rate of the encoder (default: the recipe's lr)")
    a("--decoder-lr", type=float,
      help="peak learning rate of the decoders (default: the recipe's lr)")
    a("--time-budget-minutes", type=float,
      help="stop (and save) once the run's cumulative training time, over all restarts, "
           "exceeds this")
    a("--device", choices=("auto", "cpu", "cuda"), default="auto",
      help="where to train: auto (default) takes the GPU when torch sees one, else the CPU; the "
           "recipes say cpu: true, which only --device cpu or a machine without a GPU keeps")
    a("--dry-run", action="store_true", help="print the fairseq-train command and exit")
    add_log_level_argument(parser)
    return parser


def run_from_options(opts: argparse.Namespace) -> RecipeRun:
    return RecipeRun(
        config=opts.config, train_manifest=opts.train_manifest, dev_manifest=opts.dev_manifest,
        save_dir=opts.save_dir, num_workers=opts.num_workers, batch_size=opts.batch_size,
        encoder_lr=opts.encoder_lr, decoder_lr=opts.decoder_lr,
        freeze_decoders_updates=opts.freeze_decoders_updates,
        time_budget_minutes=opts.time_budget_minutes,
        device=resolve_device(opts.device),
    )


def resolve_device(choice: str) -> str:
    """``cpu`` or ``cuda`` for ``--device`` (``auto``: the GPU when torch sees one)."""
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _save_dir_of(argv: Sequence[str]) -> Path:
    """The effective ``--save-dir`` (the last one given wins, as in argparse)."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--save-dir"]
    return Path(values[-1]) if values else Path("checkpoints")


def prepare_init_checkpoint(argv: Sequence[str], source: Path, load_encoder: bool,
                            load_decoders: bool, save_dir: Path) -> Path:
    """Builds the run's model, loads the chosen groups of ``source`` and saves the whole model.

    Tensors that are not loaded keep exactly the values fairseq-train would initialise them
    with (same seed, same build), so fairseq then loads the file strictly.
    """
    _, _, model = build_task_and_model(argv)
    report = load_partial_checkpoint(model, source, load_encoder=load_encoder,
                                     load_decoders=load_decoders)
    if report.loaded == 0:
        raise InputError(f"--init-from {source}: no tensor matches the model "
                         "(see the report above); train from scratch instead or check --config")
    save_dir.mkdir(parents=True, exist_ok=True)
    target = save_dir / INIT_CHECKPOINT
    atomic_torch_save({
        "args": None, "cfg": None, "model": model.state_dict(), "criterion": None,
        "optimizer_history": [{"criterion_name": "none", "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"train_iterator": {"version": 2, "epoch": 1, "iterations_in_epoch": 0,
                                           "shuffle": True},
                        "init_from": str(source), "init_report": report.lines()},
    }, target)
    logger.info("wrote %s (%d tensors from %s)", target, report.loaded, source)
    return target


def fairseq_command(opts: argparse.Namespace,
                    passthrough: List[str]) -> Tuple[List[str], Optional[Path]]:
    """The fairseq-train arguments, and the checkpoint to seed a fresh run from (``None``: no
    seeding)."""
    argv = run_from_options(opts).fairseq_argv() + passthrough
    save_dir = _save_dir_of(argv)
    last = save_dir / LAST_CHECKPOINT
    if last.exists():
        if not opts.resume:
            raise InputError(f"{last} exists and --no-resume was given: back up {save_dir} "
                             "(scripts/restart_advisor.py prints the command) "
                             "or pick another --save-dir")
        if opts.init_from is not None:
            logger.info("resuming from %s: --init-from %s is ignored (it only seeds a fresh run)",
                        last, opts.init_from)
        return argv, None
    if opts.init_from is None:
        return argv, None
    from echostream_fairseq.shipped import find_shipped_model

    shipped = find_shipped_model(opts.init_from)  # a shipped model's name or folder seeds too
    if shipped is not None:
        shipped.verify()
    source = shipped.checkpoint if shipped is not None else opts.init_from
    check_checkpoint_file(source)
    return argv, source


def _model_repr_only_when_debugging(record: logging.LogRecord) -> bool:
    """fairseq-train logs the whole model's repr (a hundred lines) at INFO; keep it for
    ``--log-level DEBUG``."""
    from torch import nn

    return not isinstance(record.msg, nn.Module) or logging.getLogger().isEnabledFor(logging.DEBUG)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts, passthrough = build_parser().parse_known_args(argv)
    setup_logging(opts.log_level, sys.stdout)  # fairseq logs to stdout; keep one stream
    prepared: List[List[str]] = []

    def prepare() -> int:
        fairseq_argv, init_source = fairseq_command(opts, passthrough)
        save_dir = _save_dir_of(fairseq_argv)
        seeded = fairseq_argv + (["--finetune-from-model", str(save_dir / INIT_CHECKPOINT)]
                                 if init_source else [])
        if opts.dry_run:
            print(shlex.join(["fairseq-train", *seeded]))
            return 0
        if "--cpu" not in fairseq_argv:
            import torch

            if not torch.cuda.is_available():
                raise InputError("--device cuda: torch sees no CUDA device here; "
                                 "use --device cpu or auto")
        remove_stale_temporaries(save_dir)
        if "--log-file" in fairseq_argv:  # fairseq opens it without creating its folder
            log_file = Path(fairseq_argv[fairseq_argv.index("--log-file") + 1])
            try:
                log_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise InputError(f"{log_file}: its folder cannot be made ({error.strerror}; "
                                 "--log-file)") from error
        if init_source is not None:
            prepare_init_checkpoint(fairseq_argv, init_source, opts.load_encoder,
                                    opts.load_decoders, save_dir)
        prepared.append(seeded)
        return 0

    status = run_main(prepare)
    if status or not prepared:
        return status
    from fairseq.distributed import utils as distributed_utils
    from fairseq_cli import train as fairseq_train

    from echostream_fairseq.training import parse_fairseq_args

    logging.getLogger("fairseq_cli.train").addFilter(_model_repr_only_when_debugging)
    # a bad manifest or checkpoint found once fairseq runs (loading a split, resuming) is a
    # user error there too: one line, status 2
    return run_main(lambda: distributed_utils.call_main(parse_fairseq_args(prepared[0]),
                                                        fairseq_train.main))


if __name__ == "__main__":
    raise SystemExit(main())
