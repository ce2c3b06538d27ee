"""The three training stages through their real command lines, as 2 processes on CPU (torchrun, MULTI_CPU over gloo),
on tiny sizes: resume continues the same loss curve, pseudo-labels cover every input once (also after kill -9),
local push targets receive a loadable model / dataset, bad input is skipped and counted, a NaN loss stops the run.

Runtime: about 2-3 minutes on a 2-core CPU (each command starts Python, torch and transformers once per process).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
TINY = [
    "--crop_size", "56", "--synthetic_height", "64", "--synthetic_width", "64", "--per_device_batch_size", "2",
    "--logging_steps", "1", "--report_to", "none", "--warmup_steps", "0", "--lr_schedule", "constant",
    "--processor_size", "56",
]  # fmt: skip
TEACHER = ["train/teacher.py", "--config", "train/configs/tiny_teacher.yaml", *TINY]
STUDENT = ["train/student.py", "--config", "train/configs/tiny_student.yaml", *TINY, "--per_device_batch_size", "3"]
PSEUDO = [
    "train/pseudo_label.py",
    "--config",
    "train/configs/tiny_pseudo_label.yaml",
    "--inference_size",
    "56",
    "--per_device_batch_size",
    "2",
    "--shard_size",
    "2",
]


def _env() -> dict:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"
    )
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(args: list[str], processes: int = 1, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a stage script as `processes` processes (torchrun for 2) from the repository root."""
    if processes > 1:
        command = [TORCHRUN, "--standalone", "--nproc_per_node", str(processes), *args]
    else:
        command = [sys.executable, *args]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def losses(folder: Path) -> dict[int, float]:
    lines = (folder / "losses.jsonl").read_text().splitlines()
    return {entry["step"]: entry["train/loss"] for entry in map(json.loads, lines)}


def _photos(folder: Path, count: int, corrupt: bool = True) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for index in range(count):
        height, width = int(rng.integers(40, 72)), int(rng.integers(40, 72))
        gradient = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
        array = np.clip(gradient + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        name = f"img_{index:02d}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(array).save(folder / name)
        names.append(name)
    if corrupt:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return names


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train_smoke")


@pytest.fixture(scope="module")
def teacher_run(workdir) -> Path:
    """Uninterrupted 2-process teacher run: 4 steps, checkpoints every 2, pushed to a local folder."""
    output = workdir / "teacher"
    run(
        [
            *TEACHER,
            "--output_dir",
            str(output),
            "--max_steps",
            "4",
            "--checkpointing_steps",
            "2",
            "--push_to_hub",
            "--hub_model_id",
            str(workdir / "pushed_teacher"),
        ],
        processes=2,
    )
    return output


@pytest.fixture(scope="module")
def photos(workdir) -> tuple[Path, list[str]]:
    folder = workdir / "photos"
    return folder, _photos(folder, 7)


@pytest.fixture(scope="module")
def pseudo_labels(workdir, teacher_run, photos) -> Path:
    output = workdir / "pseudo"
    result = run(
        [
            *PSEUDO,
            "--teacher",
            str(teacher_run / "final"),
            "--unlabelled",
            str(photos[0]),
            "--output_dir",
            str(output),
            "--push_to_hub",
            "--hub_dataset_id",
            str(workdir / "pushed_pseudo"),
        ],
        processes=2,
    )
    assert "images/s" in result.stdout
    return output


def test_teacher_two_processes_checkpoints_and_final_folder(teacher_run, workdir):
    state = json.loads((teacher_run / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["world_size"] == 2
    assert {p.name for p in teacher_run.glob("checkpoint-*")} == {"checkpoint-2", "checkpoint-4"}
    # Accelerate's state: scheduler and every process's stream positions as registered objects, the weights once
    assert {"custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"} <= {
        p.name for p in (teacher_run / "checkpoint-4").iterdir()
    }
    assert list((teacher_run / "checkpoint-4").rglob("*.safetensors")) == [
        teacher_run / "checkpoint-4" / "model" / "model.safetensors"
    ]
    assert (teacher_run / "resolved_config.yaml").is_file() and (teacher_run / "final" / "README.md").is_file()
    assert len(losses(teacher_run)) == 4 and all(np.isfinite(list(losses(teacher_run).values())))
    for folder in (teacher_run / "final", workdir / "pushed_teacher", teacher_run / "checkpoint-4" / "model"):
        model = DepthAnythingForDepthEstimation.from_pretrained(folder)
        assert model(torch.zeros(1, 3, 56, 70)).predicted_depth.shape == (1, 56, 70)
    assert DepthAnythingImageProcessor.from_pretrained(workdir / "pushed_teacher").size == 56


def test_teacher_resume_continues_the_same_loss_curve(teacher_run, workdir):
    output = workdir / "teacher_resumed"
    run([*TEACHER, "--output_dir", str(output), "--max_steps", "2", "--checkpointing_steps", "2"], processes=2)
    result = run(
        [
            *TEACHER,
            "--output_dir",
            str(output),
            "--max_steps",
            "4",
            "--checkpointing_steps",
            "2",
            "--resume_from_checkpoint",
            "latest",
        ],
        processes=2,
    )
    assert "Resumed from" in result.stderr
    resumed, uninterrupted = losses(output), losses(teacher_run)
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert resumed[step] == pytest.approx(uninterrupted[step], rel=1e-5), step


def test_pseudo_labels_cover_every_input_once(pseudo_labels, photos, workdir):
    import datasets

    from modeling_depth_anything.data import pseudo_labels as pseudo_label_format

    folder, names = photos
    ids = [row["source_id"] for row in datasets.load_dataset(str(pseudo_labels), split="train")]
    assert sorted(ids) == sorted(names)  # every readable input exactly once, across both processes
    assert {p.name.split("-")[1] for p in (pseudo_labels / "data").glob("*.parquet")} == {"rank0", "rank1"}
    skipped = json.loads((pseudo_labels / "skipped.json").read_text())
    assert [entry["id"] for entry in skipped] == ["broken.jpg"]
    pushed = datasets.load_dataset(str(workdir / "pushed_pseudo"), split="train")
    assert sorted(pushed["source_id"]) == sorted(names)
    row = pushed[0]
    disparity = pseudo_label_format.decode_disparity(row["disparity"], row["disparity_min"], row["disparity_max"])
    assert disparity.shape == (row["image"].height, row["image"].width)


def test_pseudo_labelling_resumes_after_kill_9(teacher_run, workdir):
    folder = workdir / "many_photos"
    names = _photos(folder, 24, corrupt=False)
    output = workdir / "pseudo_killed"
    command = [
        sys.executable,
        *PSEUDO,
        "--teacher",
        str(teacher_run / "final"),
        "--unlabelled",
        str(folder),
        "--output_dir",
        str(output),
        "--per_device_batch_size",
        "1",
        "--shard_size",
        "1",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((output / "data").glob("*.parquet"))) < 3 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = len(list((output / "data").glob("*.parquet")))
    assert 0 < before < len(names), "the kill came too late to test anything"
    run([*PSEUDO, "--teacher", str(teacher_run / "final"), "--unlabelled", str(folder), "--output_dir", str(output)])
    import pyarrow.parquet as pq

    ids = [
        i
        for p in sorted((output / "data").glob("*.parquet"))
        for i in pq.read_table(p).column("source_id").to_pylist()
    ]
    assert sorted(ids) == sorted(names)  # exactly once: nothing lost, nothing twice


def test_student_two_processes_resume_continues_the_same_loss_curve(pseudo_labels, workdir):
    common = [*STUDENT, "--pseudo_labels", str(pseudo_labels), "--checkpointing_steps", "2"]
    straight, resumed = workdir / "student", workdir / "student_resumed"
    run([*common, "--output_dir", str(straight), "--max_steps", "4"], processes=2)
    run([*common, "--output_dir", str(resumed), "--max_steps", "2"], processes=2)
    run([*common, "--output_dir", str(resumed), "--max_steps", "4", "--resume_from_checkpoint", "latest"], processes=2)
    entries = [json.loads(line) for line in (straight / "losses.jsonl").read_text().splitlines()]
    assert {"train/loss_pseudo", "train/loss_labelled", "train/loss_feature"} <= set(entries[0])
    for step in (1, 2, 3, 4):
        assert losses(resumed)[step] == pytest.approx(losses(straight)[step], rel=1e-5), step
    DepthAnythingForDepthEstimation.from_pretrained(straight / "final")


def test_student_v2_mode_and_online_teacher(teacher_run, photos, workdir):
    output = workdir / "student_online_v2"
    run(
        [
            *STUDENT,
            "--mode",
            "v2",
            "--feature_alignment_weight",
            "0",
            "--online_teacher",
            str(teacher_run / "final"),
            "--unlabelled",
            str(photos[0]),
            "--shuffle_buffer",
            "0",  # stored order: broken.jpg sorts first, so 2 steps surely meet it (shuffled, 6 of 8 files may not)
            "--output_dir",
            str(output),
            "--max_steps",
            "2",
            "--checkpointing_steps",
            "2",
        ]
    )
    entries = [json.loads(line) for line in (output / "losses.jsonl").read_text().splitlines()]
    assert len(entries) == 2 and "train/loss_labelled" not in entries[0]
    assert (output / "final" / "model.safetensors").is_file()
    config = (output / "final" / "training_config.yaml").read_text()
    assert "mode: v2" in config and "trim: 0.1" in config
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["bad_samples"].get("corrupt image", 0) >= 1  # the broken photo was skipped and counted


def _rgbd_folder(folder: Path) -> None:
    """Three good samples, one corrupt image, one all-invalid depth map (zeros = no measurement)."""
    rng = np.random.default_rng(1)
    for index in range(5):
        sample = folder / f"sample_{index}"
        sample.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(sample / "image.png")
        depth = (rng.uniform(500, 5000, (48, 64))).astype(np.uint16)
        if index == 3:
            depth[:] = 0
        Image.fromarray(depth).save(sample / "depth.png")
    (folder / "sample_4" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def test_bad_labelled_samples_are_skipped_and_counted(workdir):
    folder = workdir / "rgbd"
    _rgbd_folder(folder)
    output = workdir / "teacher_bad_input"
    run(
        [
            *TEACHER,
            "--labelled",
            str(folder),
            "--output_dir",
            str(output),
            "--max_steps",
            "3",
            "--checkpointing_steps",
            "3",
        ]
    )
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    bad = state["bad_samples"]
    assert bad.get("corrupt image", 0) + bad.get("truncated image", 0) >= 1
    assert bad.get("all-invalid depth", 0) >= 1
    assert all(np.isfinite(list(losses(output).values())))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(workdir):
    output = workdir / "teacher_nan"
    result = run(
        [
            *TEACHER,
            "--output_dir",
            str(output),
            "--max_steps",
            "6",
            "--checkpointing_steps",
            "2",
            "--debug_nan_at_step",
            "3",
        ],
        check=False,
    )
    assert result.returncode != 0
    assert "Loss is not finite" in result.stderr and "checkpoint-2" in result.stderr
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (output / "checkpoint-2" / "COMPLETE").is_file() and not (output / "final").exists()


def test_nonfinite_gradients_on_one_process_stop_both_with_the_last_good_checkpoint(workdir):
    """Process 0 alone gets infinite gradients at steps 3 and 4: both processes skip them together (a process that
    went on alone would hang in the next collective) and stop after `max_skipped_steps` 2."""
    output = workdir / "teacher_inf_grad"
    result = run(
        [
            *TEACHER,
            "--output_dir",
            str(output),
            "--max_steps",
            "6",
            "--checkpointing_steps",
            "2",
            "--debug_nonfinite_grad_steps",
            "3",
            "4",
            "--max_skipped_steps",
            "2",
        ],
        processes=2,
        check=False,
        timeout=240,
    )
    assert result.returncode != 0
    assert "Gradients were not finite for 2 steps in a row" in result.stderr and "checkpoint-2" in result.stderr
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-2"]
    skipped = [
        entry["train/skipped_steps"] for entry in map(json.loads, (output / "losses.jsonl").read_text().splitlines())
    ]
    assert skipped == [0, 0, 1, 2] and not (output / "final").exists()
