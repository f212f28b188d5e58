"""The ranker's networks on two gloo ranks under torchrun: both ranks end with bit-identical
weights, the weights loaded back are theirs, and they fit as well as one process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrec.candidates.two_tower.distributed import parameter_checksum
from vidrec.errors import VidrecError
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.distributed import REPORT_FILE, load_results, train_processes, write_arrays
from vidrec.scoring.train import train_classifier

CONFIG = RankerConfig(hidden=(16,), expert_hidden=(8,), tower_hidden=(8,), max_epochs=8, batch_size=64, lr=3e-3,
                      ensemble=2, patience=1)  # fmt: skip


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 10)).astype(np.float32)
    y = (x[:, :1] * 2 + rng.normal(size=(4000, 1)) > 0).astype(np.float32)
    return {"x_train": x[:3200], "y_train": y[:3200], "x_val": x[3200:], "y_val": y[3200:]}


def _bce(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> float:
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays["x_val"]))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(arrays["y_val"])))


def test_two_ranks_agree_and_the_saved_weights_are_theirs(arrays, tmp_path: Path) -> None:
    write_arrays(tmp_path / "arrays", arrays, CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "vidrec.scoring.distributed", "--arrays", str(tmp_path / "arrays"), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, env=env | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["world_size"] == 2 and report["ranks_agree"]
    first, second = report["checksums"]
    assert first == second and len(first) == CONFIG.ensemble
    loaded = load_results(tmp_path / "out", arrays["x_train"].shape[1], CONFIG)
    assert [parameter_checksum(r.model) for r in loaded] == first


def test_two_processes_fit_as_well_as_one(arrays) -> None:
    two = train_processes(arrays, CONFIG, processes=2)
    same_batch = replace(CONFIG, batch_size=2 * CONFIG.batch_size)  # one process, the global batch of two
    one = train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], same_batch)
    # Different paths (each rank its own dropout masks), the same steps: validation log loss
    # within 0.02 of the 1-process fit with the same global batch, far below chance (0.69).
    assert abs(_bce(two[0].model, arrays) - _bce(one.model, arrays)) < 0.02
    assert _bce(two[0].model, arrays) < 0.45


def test_the_cpu_is_the_default_device_without_a_gpu_and_cuda_is_a_clear_error(arrays) -> None:
    config = replace(CONFIG, ensemble=1, max_epochs=2)
    auto = train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], config)
    cpu = train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                           replace(config, device="cpu"))  # fmt: skip
    assert parameter_checksum(auto.model) == parameter_checksum(cpu.model) or torch.cuda.is_available()
    if not torch.cuda.is_available():
        with pytest.raises(VidrecError, match="no CUDA GPU"):
            train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                             replace(config, device="cuda"))  # fmt: skip
    with pytest.raises(ValueError, match="device must be"):
        RankerConfig(device="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_fits_as_well_as_the_cpu(arrays) -> None:
    gpu = train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                           replace(CONFIG, ensemble=1, device="cuda"))  # fmt: skip
    cpu = train_classifier(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                           replace(CONFIG, ensemble=1, device="cpu"))  # fmt: skip
    assert next(gpu.model.parameters()).device.type == "cpu"  # handed back for serving
    assert abs(_bce(gpu.model, arrays) - _bce(cpu.model, arrays)) < 0.02
