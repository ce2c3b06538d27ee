"""Inference speed benchmark: transformers' built-in Depth Anything vs ours (default and fast) vs ONNX Runtime.

    python eval/speed.py --quick        # 518x518 and 518x686, batch 1; see --help and modeling_depth_anything.evaluation.speed
"""

import sys

from modeling_depth_anything.evaluation.speed import main

if __name__ == "__main__":
    sys.exit(main())
