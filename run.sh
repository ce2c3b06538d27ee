#!/usr/bin/env bash
# The main job: set up (first run only, the README's two commands), then the whole pipeline at CPU scale.
#   bash run.sh [--output_dir runs/pipeline] [--teacher_minutes 4.5] [--student_minutes 3.5] [--total_minutes 14.5]
# The set-up time is passed on, so the job's 14.5-minute budget (--total_minutes) includes it.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS=0
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import modeling_depth_anything, accelerate, kornia" 2>/dev/null; then
    echo "=== set-up: .venv (torch first, then the package with its extras)"
    python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0
    .venv/bin/pip install -q -e ".[test]"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python run_pipeline.py --setup_seconds "$SECONDS" "$@"
