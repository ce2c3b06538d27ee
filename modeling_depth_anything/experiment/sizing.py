"""How many optimiser steps fit a time budget: measured step time in, planned steps out.

A training stage's step time depends on the CPU kind (fp32 or native bf16, AVX2 or AVX-512, AMX), the thread count and
whatever else runs on the machine: on an AVX2-only CPU the tiny teacher ran 54 of 1,200 planned steps in its 4.5 min,
its learning-rate schedule never decayed and it learned nothing past the vertical prior (issue 11). So the main job
measures instead of assuming: each stage first runs `calibration_steps` real steps (logged every step), the median
step time of those after the first few (start-up, lazy initialisation) sets the step count that fits the budget, and
the stage resumes from its calibration checkpoint with that many steps, so the schedule (warm-up, then decay to 0)
completes inside the budget. No step is thrown away: calibration steps are the run's first steps.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class StepPlan:
    """The decision for one stage, as the report states it.

    Args:
        stage (`str`): `"teacher"` or `"student"`.
        step_seconds (`float`): measured wall time of one optimiser step (median over the calibration steps).
        budget_seconds (`float`): time the stage's step loop may take.
        steps (`int`): planned optimiser steps (the schedule's length).
        fitting (`int`): steps that fit the budget (below the stage's minimum, the machine is too slow for it).
        cap (`int`): the most steps wanted (the recipe's length on a fast machine).
        reason (`str`): one sentence: why `steps`.
    """

    stage: str
    step_seconds: float
    budget_seconds: float
    steps: int
    fitting: int
    cap: int
    reason: str

    @property
    def too_slow(self) -> bool:
        """Fewer steps fit than the stage needs: the plan keeps the minimum and the loop's time limit stops it."""
        return self.fitting < self.steps

    def to_dict(self) -> dict:
        return asdict(self)


def step_seconds_from_log(losses_jsonl: str | Path, images_per_step: int, skip: int = 2) -> float:
    """Median seconds per optimiser step from a stage's `losses.jsonl` written with `logging_steps 1`.

    Each record's `train/images_per_second` covers one step there, so a step took `images_per_step / rate`. The first
    `skip` records (lazy initialisation, first-call allocations) are left out when more remain.

    Raises:
        ValueError: naming the file, when it holds no usable record.
    """
    path = Path(losses_jsonl)
    if images_per_step < 1:
        raise ValueError(f"images_per_step must be >= 1, got {images_per_step!r}")
    rates = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rate = json.loads(line).get("train/images_per_second")
                if isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate):
                    rates.append(float(rate))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the step times ({error})") from error
    if not rates:
        raise ValueError(f"{path}: no step with a measured images_per_second")
    usable = rates[skip:] if len(rates) > skip else rates
    return statistics.median(images_per_step / rate for rate in usable)


def plan_steps(
    stage: str,
    step_seconds: float,
    budget_seconds: float,
    cap: int,
    minimum: int = 1,
    margin: float = 0.9,
) -> StepPlan:
    """Steps that fit: `floor(margin * budget / step_seconds)`, at most `cap`, at least `minimum`.

    `margin` leaves room for checkpoint saves, logging and a machine that gets busier mid-run. Below `minimum` the
    machine is too slow for the budget: the plan keeps `minimum` steps (the loop's own time limit still stops it) and
    says so.
    """
    if not (step_seconds > 0 and math.isfinite(step_seconds)):
        raise ValueError(f"step_seconds must be positive and finite, got {step_seconds!r}")
    if not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds!r}")
    if not (isinstance(cap, int) and isinstance(minimum, int) and 1 <= minimum <= cap):
        raise ValueError(f"need integers 1 <= minimum <= cap, got minimum={minimum!r}, cap={cap!r}")
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin!r}")
    fitting = math.floor(margin * budget_seconds / step_seconds)
    measured = f"{step_seconds:.3f} s/step measured; {budget_seconds / 60:.2f} min budget"
    if fitting >= cap:
        steps, reason = cap, f"{measured} fits {fitting} steps, so the recipe's full {cap} steps run"
    elif fitting >= minimum:
        steps, reason = (
            fitting,
            (
                f"{measured} ({margin:.0%} of it for steps) fits {fitting} of the recipe's {cap} steps; the schedule is "
                f"shortened to {fitting} so it still warms up and decays to 0"
            ),
        )
    else:
        steps, reason = (
            minimum,
            (
                f"{measured} fits only {fitting} steps, below the {minimum} this stage needs to learn anything: this "
                f"machine is too slow for the budget (raise the stage's minutes); {minimum} planned, the time limit stops it"
            ),
        )
    return StepPlan(stage, step_seconds, budget_seconds, steps, fitting, cap, reason)
