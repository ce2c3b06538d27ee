"""The main job (`run.sh`, `run_pipeline.py`): teacher -> pseudo-labels -> student -> evaluation -> report at CPU scale,
each training stage sized from its measured step time (`sizing`), every score read from the evaluation runner's
`metrics.json` (`report`). Entry point: `pipeline.main`."""

from .pipeline import ExperimentConfig, main, run_experiment
from .sizing import StepPlan, plan_steps, step_seconds_from_log

__all__ = ["ExperimentConfig", "StepPlan", "main", "plan_steps", "run_experiment", "step_seconds_from_log"]
