"""Run transformers' ModelTesterMixin against DepthAnythingForDepthEstimation.

The mixin lives in tests/test_modeling_common.py of transformers' source distribution, which `pip install` does not
ship, so this script takes one that is already on disk (nothing is downloaded):

    .venv/bin/pip download --no-deps --no-binary :all: transformers==$(.venv/bin/python -c \
        "import transformers; print(transformers.__version__)") -d /tmp/tf && tar xzf /tmp/tf/transformers-*.tar.gz -C /tmp/tf
    .venv/bin/pip install --target /tmp/tf/site parameterized            # the mixin's one extra dependency
    PYTHONPATH=/tmp/tf/site .venv/bin/python tests/transformers_common/run_model_tester_mixin.py \
        --transformers-src /tmp/tf/transformers-<version> [--training] [-- extra pytest arguments]

It copies the source tree's tests/ into a work folder, adds `depth_anything_hf_mixin.py` (beside this script) as
tests/models/depth_anything_hf/test_depth_anything_hf.py, and runs pytest there. The sdist leaves out
tests/generation/test_utils.py and tests/exporters/test_export.py, which test_modeling_common.py imports only for
`GenerationTesterMixin` (a marker this non-generative model must not carry) and `ExportTesterMixin` (the exporter
tests); where they are missing, empty stand-ins are written, so the exporter tests are not part of the run. The exit
status is pytest's; its summary line gives the counts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAND_INS = {
    "generation/test_utils.py": "class GenerationTesterMixin:  # stand-in: the sdist lacks tests/generation\n    pass\n",
    "exporters/test_export.py": "class ExportTesterMixin:  # stand-in: the sdist lacks tests/exporters\n    pass\n",
    "utils/test_configuration_utils.py": "config_common_kwargs = {}  # stand-in, used by ConfigTester only\n",
}


def prepare(source: Path, work_dir: Path) -> Path:
    """Copies `source`/tests into `work_dir`, adds missing stand-ins and our test module; returns the test file."""
    tests = source / "tests"
    if not (tests / "test_modeling_common.py").is_file():
        raise FileNotFoundError(f"{tests / 'test_modeling_common.py'}: not found; pass an unpacked transformers sdist")
    target = work_dir / "tests"
    shutil.copytree(tests, target, dirs_exist_ok=True)
    for relative, text in STAND_INS.items():
        path = target / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    test_file = target / "models" / "depth_anything_hf" / "test_depth_anything_hf.py"
    test_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "depth_anything_hf_mixin.py", test_file)
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()  # relative imports need packages all the way up
    return test_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transformers-src", required=True, type=Path, help="an unpacked transformers sdist")
    parser.add_argument("--work-dir", type=Path, default=None, help="where to assemble the tests (default: temp)")
    parser.add_argument("--training", action="store_true", help="also run the training tests the built-in skips")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("parameterized") is None:
        parser.exit(2, "error: test_modeling_common.py needs the `parameterized` package; install it (or put it on "
                       "PYTHONPATH) first\n")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="model_tester_mixin_"))
    try:
        test_file = prepare(args.transformers_src, work_dir)
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DEPTH_ANYTHING_HF_TRAINING": "1" if args.training else "0"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
               "--rootdir", str(work_dir), str(test_file), *args.pytest_args]
    return subprocess.call(command, cwd=work_dir, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
