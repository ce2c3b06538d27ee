"""The main job: Depth Anything's whole recipe at CPU scale on data this repository ships or generates.

    bash run.sh                                          # set-up if needed, then this script
    .venv/bin/python run_pipeline.py --output_dir runs/pipeline [--teacher_minutes 4.5 --student_minutes 3.5]
    .venv/bin/python run_pipeline.py --help              # every option (modeling_depth_anything.experiment)

Teacher -> pseudo-labels -> student, each training stage sized from its measured step time, then evaluation of the
untrained model, the vertical prior, the teacher and the student through `eval/evaluate_model.py`'s runner, depth maps
and `<output_dir>/report.md`. The library: `modeling_depth_anything.experiment`.
"""

import sys
from pathlib import Path

from modeling_depth_anything.experiment import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parent))
