"""Inference speed benchmark: transformers' built-in Depth Anything vs ours, the fast path on each backend
(torch, compile, onnxruntime) as `DepthEstimator.from_pretrained(backend=...)` builds it.

    python eval/speed.py --quick --threads 1 --clock cpu   # 518x518, batch 1; see --help and
                                                          # modeling_depth_anything.evaluation.speed
"""

import sys

from modeling_depth_anything.evaluation.speed import main

if __name__ == "__main__":
    sys.exit(main())
