"""Training machinery shared by the stages (teacher, pseudo-labels, student): configs, accelerator set-up, the models
a stage builds, and the step loop with checkpoints, resume, logging, the final folder and its push.

The stage scripts in `train/` only say how to get a batch and how to compute its loss::

    accelerator = setup_training_accelerator(train_args, data_args)  # threads leave a core to each data worker
    run = TrainingRun(accelerator, build_model(model_args), train_args, configs, {"labelled": stream}, stage="teacher")
    run.train(next_batch, compute_loss)
    run.save_final(processor)

Needs the `train` extra (`accelerate`, `datasets`, `kornia`).
"""

from .args import (
    DataArguments,
    ModelArguments,
    PseudoLabelArguments,
    StudentArguments,
    TeacherArguments,
    TrainArguments,
    parse_args,
    save_resolved_config,
)
from .loop import (
    NonFiniteGradientError,
    NonFiniteLossError,
    TrainingRun,
    build_optimizer,
    build_scheduler,
    list_checkpoints,
)
from .models import FrozenEncoder, build_frozen_encoder, build_model
from .setup import (
    configure_cpu_threads,
    resolve_mixed_precision,
    setup_accelerator,
    setup_logging,
    setup_training_accelerator,
)

__all__ = [
    "DataArguments",
    "FrozenEncoder",
    "ModelArguments",
    "NonFiniteGradientError",
    "NonFiniteLossError",
    "PseudoLabelArguments",
    "StudentArguments",
    "TeacherArguments",
    "TrainArguments",
    "TrainingRun",
    "build_frozen_encoder",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "configure_cpu_threads",
    "list_checkpoints",
    "parse_args",
    "resolve_mixed_precision",
    "save_resolved_config",
    "setup_accelerator",
    "setup_logging",
    "setup_training_accelerator",
]
