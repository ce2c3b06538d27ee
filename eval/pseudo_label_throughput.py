"""Pseudo-labelling throughput against the bare forward pass, in one process; prints the ratio (target >= 90 %).

python eval/pseudo_label_throughput.py        # the main job's tiny teacher at 126 px, batch 8; see --help and
                                              # modeling_depth_anything.evaluation.throughput
"""

import sys
from pathlib import Path

from modeling_depth_anything.evaluation.throughput import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
