"""Zero-shot depth evaluation: a model on one or more benchmarks -> metrics.json, results.md, grids, model card.

    python eval/evaluate_model.py --model depth-anything/Depth-Anything-V2-Small-hf \\
        --benchmark nyu:data/nyu/official_splits/test --benchmark rgbd:assets/rgbd --output runs/eval-v2s

The same as `depth-anything evaluate ...`; options: `--help`, and `modeling_depth_anything.evaluation.runner`.
"""

import sys

from modeling_depth_anything.evaluation.runner import main

if __name__ == "__main__":
    sys.exit(main())
