"""Resume after a real SIGKILL ends bit-identical to an uninterrupted run; bad resumes refuse."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    from torch.utils.data import DataLoader
    import prunekit.recover.recipe as R
    from prunekit.recover.run import run_recipe as run
    from prunekit.recover.tasks import load_task, small_cnn

    torch.set_num_threads(1)
    out, ckdir, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    tr, va = load_task("digits", limit=192)
    torch.manual_seed(0)
    model = small_cnn(2, widths=(8, 16, 16))
    g = torch.Generator().manual_seed(1)
    train = DataLoader(tr, batch_size=32, shuffle=True, generator=g)
    val = DataLoader(va, batch_size=96)
    recipe = R.Recipe(method="unstructured", criterion="taylor", target=R.TargetSpec(ratio=0.6),
                      schedule=R.Cubic(steps=3), pretrain=R.Finetune(epochs=1, lr=0.05),
                      finetune=R.Finetune(epochs=2, lr=0.05, checkpoint_every=2),
                      distill=R.Distill(temperature=2.0, alpha=0.5, hidden=(("4", "4"),)))

    def loss_fn(o, y):
        time.sleep(delay)
        return torch.nn.functional.cross_entropy(o, y)

    res = run(recipe, model, train, val, loss_fn, checkpoint_dir=ckdir, resume=True)
    torch.save(model.state_dict(), out)
    print("final", res.final_metric)
""")


def _launch(tmp: Path, out: str, ckdir: str, delay: float) -> subprocess.Popen:
    script = tmp / "job.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    return subprocess.Popen([sys.executable, str(script), out, ckdir, str(delay)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_resume_is_bit_identical(tmp_path):
    ref = _launch(tmp_path, str(tmp_path / "ref.pt"), str(tmp_path / "ref_run"), 0.0)
    victim = _launch(tmp_path, str(tmp_path / "res.pt"), str(tmp_path / "run"), 0.05)
    ckpt, meta = tmp_path / "run" / "last.pt", tmp_path / "run" / "meta.json"
    deadline = time.time() + 90
    while victim.poll() is None and time.time() < deadline:  # kill mid fine-tuning, after the
        if meta.exists():                                     # first masks were applied
            state = json.loads(meta.read_text())["state"]
            if state["phase"] == 1 and state["batch"] >= 4:
                break
        time.sleep(0.01)
    time.sleep(0.07)
    assert victim.poll() is None, victim.communicate()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert ckpt.exists() and not (tmp_path / "res.pt").exists()
    resumed = _launch(tmp_path, str(tmp_path / "res.pt"), str(tmp_path / "run"), 0.0)
    for p in (ref, resumed):
        o, e = p.communicate(timeout=120)
        assert p.returncode == 0, e
    a = torch.load(tmp_path / "ref.pt", weights_only=True)
    b = torch.load(tmp_path / "res.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
