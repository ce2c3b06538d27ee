"""The one precision policy (`inference/precision.py`) and how training obeys it: CPU flags injected, the launcher's
`--mixed_precision` (ACCELERATE_MIXED_PRECISION) reaching the `Accelerator` unless the config sets it, CPU threads."""

import logging

import pytest
import torch

from modeling_depth_anything.inference.precision import (
    choose_precision,
    cpu_supports_bf16,
    onednn_capped_flags,
    read_cpu_flags,
    resolve_precision,
)

AVX2_ONLY = {"fpu", "sse4_2", "avx", "avx2", "fma"}  # the AMD EPYC Zen 3 of issue 11
ZEN4 = AVX2_ONLY | {"avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "amx_tile", "amx_bf16"}


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps one process-wide state; each test builds its own `Accelerator`."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.mark.parametrize(("flags", "expected"), [(AVX2_ONLY, torch.float32), (ZEN4, torch.bfloat16)])
def test_auto_follows_the_cpu_flags(flags, expected):
    choice = choose_precision("auto", "cpu", cpu_flags=flags)
    assert choice.dtype == expected
    # the reason names the flags found, or their absence
    assert ("CPU flags avx512_bf16" in choice.reason) == (expected == torch.bfloat16)
    assert ("no avx512_bf16 / amx_bf16" in choice.reason) == (expected == torch.float32)
    assert choose_precision("auto", "cpu", cpu_flags=SAPPHIRE_RAPIDS).dtype == torch.bfloat16
    assert resolve_precision("auto", torch.device("cpu"), cpu_flags=flags) == expected
    assert cpu_supports_bf16(flags) == (expected == torch.bfloat16)


def test_explicit_bf16_on_a_cpu_without_it_runs_but_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="modeling_depth_anything.inference.precision"):
        choice = choose_precision("bf16", "cpu", cpu_flags=AVX2_ONLY | {"test_marker_1"})
    assert choice.dtype == torch.bfloat16
    assert "60x" in caplog.text and "no avx512_bf16 / amx_bf16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modeling_depth_anything.inference.precision"):
        choose_precision("bfloat16", "cpu", cpu_flags=ZEN4)
    assert "60x" not in caplog.text


def test_explicit_values_and_errors():
    assert choose_precision("no", "cpu", cpu_flags=ZEN4).dtype == torch.float32
    assert choose_precision("float32", "cpu", cpu_flags=ZEN4).mixed_precision == "no"
    with pytest.raises(ValueError, match="'half'"):
        choose_precision("half", "cpu")
    with pytest.raises(ValueError, match="fp16"):
        choose_precision("fp16", "cpu", cpu_flags=ZEN4)


def test_cpu_flags_are_read_from_a_cpuinfo_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: none\n")
    assert read_cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert read_cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(
    ("cap", "taken"),
    [
        ("AVX2", {"avx512_bf16", "amx_bf16"}),
        ("avx512_core", {"avx512_bf16", "amx_bf16"}),
        ("AVX512_CORE_BF16", {"amx_bf16"}),
        ("AVX512_CORE_AMX", set()),
        ("ALL", set()),
        ("not-an-isa", set()),
    ],
)
def test_a_onednn_isa_cap_takes_bf16_away(cap, taken, monkeypatch):
    assert onednn_capped_flags({"ONEDNN_MAX_CPU_ISA": cap}) == taken
    assert onednn_capped_flags({"DNNL_MAX_CPU_ISA": cap}) == taken
    assert onednn_capped_flags({}) == frozenset()
    # this machine's flags, as the policy reads them, lose what the cap takes (the AVX2 emulation of issue 11)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert not read_cpu_flags() & taken
    if taken >= {"avx512_bf16", "amx_bf16"}:
        choice = choose_precision("auto", "cpu")
        assert choice.dtype == torch.float32 and f"ONEDNN_MAX_CPU_ISA={cap}" in choice.reason


def test_training_precision_precedence():
    from modeling_depth_anything.training.setup import resolve_mixed_precision

    launcher = {"ACCELERATE_MIXED_PRECISION": "bf16"}
    # the config says nothing (auto): the launcher decides; Accelerator reads the variable itself (None)
    assert resolve_mixed_precision("auto", "cpu", ZEN4, environ=launcher)[0] is None
    # no launcher: the hardware decides
    assert resolve_mixed_precision("auto", "cpu", AVX2_ONLY, environ={})[0] == "no"
    assert resolve_mixed_precision("auto", "cpu", ZEN4, environ={})[0] == "bf16"
    # an explicit config or command-line value wins over both
    assert resolve_mixed_precision("no", "cpu", ZEN4, environ=launcher)[0] == "no"
    with pytest.raises(ValueError, match="'fp8'"):
        resolve_mixed_precision("fp8", "cpu", ZEN4, environ={})


def test_the_launchers_mixed_precision_reaches_the_accelerator(monkeypatch, tmp_path, fresh_accelerate_state):
    from modeling_depth_anything.training.setup import setup_accelerator

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    accelerator = setup_accelerator(str(tmp_path), "auto", cpu_flags=AVX2_ONLY)
    assert accelerator.mixed_precision == "bf16"


def test_an_explicit_config_value_wins_over_the_launcher(monkeypatch, tmp_path, fresh_accelerate_state):
    from modeling_depth_anything.training.setup import setup_accelerator

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    accelerator = setup_accelerator(str(tmp_path), "no", cpu_flags=ZEN4)
    assert accelerator.mixed_precision == "no"


def test_without_a_launcher_the_hardware_decides(monkeypatch, tmp_path, fresh_accelerate_state):
    from modeling_depth_anything.training.setup import setup_accelerator

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    accelerator = setup_accelerator(str(tmp_path), "auto", cpu_flags=AVX2_ONLY)
    assert accelerator.mixed_precision == "no"


def test_unknown_or_missing_tracker_is_an_error(tmp_path, fresh_accelerate_state):
    from accelerate.tracking import get_available_trackers

    from modeling_depth_anything.training.setup import setup_accelerator

    missing = [name for name in ("aim", "clearml", "swanlab") if name not in map(str, get_available_trackers())]
    if not missing:
        pytest.skip("every candidate tracker is installed")
    with pytest.raises(ValueError, match=f"{missing[0]}.*not installed"):
        setup_accelerator(str(tmp_path), "no", report_to=missing[0])


def test_cpu_threads_auto_divides_the_cpus_between_local_processes():
    from modeling_depth_anything.training.setup import configure_cpu_threads

    before = torch.get_num_threads()
    try:
        assert "OMP_NUM_THREADS=3" in configure_cpu_threads(None, environ={"OMP_NUM_THREADS": "3"})
        reason = configure_cpu_threads(None, environ={"LOCAL_WORLD_SIZE": "64"})
        assert torch.get_num_threads() == 1 and "64 local process(es)" in reason
        assert configure_cpu_threads(2, environ={}).startswith("2 CPU thread(s)") and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cpu_threads_auto_leaves_a_core_to_each_dataloader_worker(monkeypatch):
    """Threads + decoding workers never exceed the cores (oversubscribed OpenMP threads spin: 13x slower measured)."""
    import os

    from modeling_depth_anything.training.setup import configure_cpu_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    before = torch.get_num_threads()
    try:
        reason = configure_cpu_threads(None, environ={}, data_workers=3)
        assert torch.get_num_threads() == 5 and "3 DataLoader worker(s)" in reason
        configure_cpu_threads(None, environ={"LOCAL_WORLD_SIZE": "2"}, data_workers=3)
        assert torch.get_num_threads() == 1  # 8 / 2 - 3
        configure_cpu_threads(None, environ={}, data_workers=20)
        assert torch.get_num_threads() == 1  # never 0
    finally:
        torch.set_num_threads(before)
