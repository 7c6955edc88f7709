"""Structural-pruning coverage: every torchvision model + HF / RNN / UNet models, one process each.

For each model (random weights, 50% channel ratio, small inputs, no per-model pruning hints):
trace + plan + apply, then check that the pruned model runs, its output shapes are unchanged,
its parameter count went down, and ``pk.verify`` (zero the planned channels vs remove them)
holds. Each model runs in its own subprocess with a time limit, so a crash or an OOM is
recorded as a failure and the run goes on; results are appended to a JSON-lines file and a
re-run skips the models already there (``--force`` redoes them).

Usage:
    python benchmarks/coverage.py                      # everything
    python benchmarks/coverage.py --family classification --timeout 600
    python benchmarks/coverage.py resnet18 hf_llama_gqa   # named models
    python benchmarks/coverage.py --markdown-only      # just rebuild the table
    python benchmarks/coverage.py --size 224 --out benchmarks/results/coverage224.jsonl maxvit_t
Outputs: benchmarks/results/coverage.jsonl and benchmarks/results/coverage.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RATIO = 0.5

# Input sizes (not pruning hints): the smallest each architecture accepts comfortably.
_CLS_SIZE = {"inception_v3": 96, "vit_b_16": 224, "vit_b_32": 224, "vit_l_16": 224,
             "vit_l_32": 224, "vit_h_14": 224, "maxvit_t": 224, "swin_t": 64, "swin_s": 64,
             "swin_b": 64, "swin_v2_t": 64, "swin_v2_s": 64, "swin_v2_b": 64}
_VIDEO_SHAPE = {"mvit_v1_b": (1, 3, 16, 224, 224), "mvit_v2_s": (1, 3, 16, 224, 224),
                "s3d": (1, 3, 16, 224, 224)}


# ----------------------------------------------------------------------------- model zoo
def _tv_families() -> dict[str, list[str]]:
    import torchvision.models as tvm

    return {"classification": tvm.list_models(module=tvm),
            "segmentation": tvm.list_models(module=tvm.segmentation),
            "detection": tvm.list_models(module=tvm.detection),
            "video": tvm.list_models(module=tvm.video)}


EXTRA = ["hf_bert", "hf_gpt2", "hf_llama_gqa", "hf_vit", "hf_qwen2", "lstm_tagger",
         "gru_classifier", "rnn_relu_stack", "unet_concat"]


def all_models() -> list[tuple[str, str]]:
    out = [(fam, n) for fam, names in _tv_families().items() for n in names]
    return out + [("other", n) for n in EXTRA]


def _unet():
    import torch
    from torch import nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self, c=16, classes=3):
            super().__init__()
            self.e1, self.e2, self.mid = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
            self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
            self.d2 = block(4 * c, 2 * c)
            self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
            self.d1 = block(2 * c, c)
            self.out = nn.Conv2d(c, classes, 1)

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(nn.functional.max_pool2d(e1, 2))
            m = self.mid(nn.functional.max_pool2d(e2, 2))
            d2 = self.d2(torch.cat([self.up2(m), e2], dim=1))
            d1 = self.d1(torch.cat([self.up1(d2), e1], dim=1))
            return self.out(d1)

    return UNet(), torch.randn(1, 3, 64, 64)


def _rnn(kind: str):
    import torch
    from torch import nn

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            if kind == "lstm":
                self.rnn = nn.LSTM(32, 64, num_layers=2, bidirectional=True, batch_first=True)
                width = 128
            elif kind == "gru":
                self.rnn = nn.GRU(32, 64, num_layers=2, batch_first=True)
                width = 64
            else:
                self.rnn = nn.RNN(32, 64, num_layers=3, nonlinearity="relu", batch_first=True)
                width = 64
            self.head = nn.Linear(width, 5)

        def forward(self, ids):
            return self.head(self.rnn(self.emb(ids))[0])

    return Seq(), torch.randint(0, 100, (2, 12))


def _hf(name: str):
    import torch
    import transformers as T

    ids = torch.randint(0, 128, (2, 16))
    small = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 128}
    if name == "hf_bert":
        return T.BertModel(T.BertConfig(vocab_size=128, **small)), {"input_ids": ids}
    if name == "hf_gpt2":
        cfg = T.GPT2Config(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=32)
        return T.GPT2LMHeadModel(cfg), {"input_ids": ids}
    if name == "hf_llama_gqa":
        cfg = T.LlamaConfig(vocab_size=128, num_key_value_heads=2, **small)
        return T.LlamaForCausalLM(cfg), {"input_ids": ids}
    if name == "hf_qwen2":
        cfg = T.Qwen2Config(vocab_size=128, num_key_value_heads=2, **small)
        return T.Qwen2ForCausalLM(cfg), {"input_ids": ids}
    cfg = T.ViTConfig(image_size=32, patch_size=8, num_labels=10, **small)
    return T.ViTForImageClassification(cfg), torch.randn(2, 3, 32, 32)


def build(family: str, name: str):
    """``(model, example_inputs)`` with random weights and nothing downloaded."""
    import torch
    import torchvision

    if family == "other":
        if name.startswith("hf_"):
            return _hf(name)
        if name == "unet_concat":
            return _unet()
        return _rnn({"lstm_tagger": "lstm", "gru_classifier": "gru"}.get(name, "rnn"))
    kw: dict = {"weights": None}
    if family in ("segmentation", "detection"):
        kw["weights_backbone"] = None
    if name in ("googlenet", "inception_v3"):
        kw["init_weights"] = False
    model = torchvision.models.get_model(name, **kw)
    if family == "classification":
        s = int(os.environ.get("PK_COVERAGE_SIZE", "0")) or _CLS_SIZE.get(name, 64)
        return model, torch.randn(1, 3, s, s)
    if family == "segmentation":
        return model, torch.randn(1, 3, 64, 64)
    if family == "detection":
        return model, ([torch.rand(3, 128, 128)],)
    return model, torch.randn(*_VIDEO_SHAPE.get(name, (1, 3, 4, 64, 64)))


# ----------------------------------------------------------------------------- one model
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _shapes(out) -> list[tuple[int, ...]]:
    from prunekit.graph.rules import flat_tensors

    if hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [tuple(t.shape) for t in flat_tensors(out)]


def run_one(family: str, name: str) -> dict:
    """Trace + plan + apply + checks for one model (runs inside the child process)."""
    import torch

    import prunekit as pk
    from prunekit.call import call_model

    torch.manual_seed(0)
    rec: dict = {"family": family, "model": name, "ratio": RATIO}
    model, x = build(family, name)
    model.eval()
    with torch.no_grad():
        dense_shapes = _shapes(call_model(model, x))
    rec["rss_built_mb"] = round(_rss_mb())
    n0 = sum(p.numel() for p in model.parameters())
    t = time.perf_counter()
    plan = pk.plan_structured(model, x, ratio=RATIO)
    rec["rss_plan_mb"] = round(_rss_mb())  # trace + plan (with the trial on a shared copy)
    pruned = plan.apply()  # in place, as a user does
    rec["engine_s"] = round(time.perf_counter() - t, 2)
    rec["rss_engine_mb"] = round(_rss_mb())
    n1 = sum(p.numel() for p in pruned.parameters())
    with torch.no_grad():
        shapes = _shapes(call_model(pruned, x))
    torch.manual_seed(0)  # the same seed rebuilds the same dense model to verify against
    dense, _ = build(family, name)
    v = pk.verify(dense.eval(), plan, x, pruned=pruned)
    from prunekit.graph.ragged import same_shapes  # detections: counts are data-dependent

    if any(plan.output_ragged):
        rec["ragged_dims"] = plan.output_ragged
    rec.update(params=n0, params_pruned=n1, params_kept=round(n1 / n0, 4), forward=True,
               shapes_same=same_shapes(shapes, dense_shapes, plan.output_ragged), reduced=n1 < n0,
               verify_ok=bool(v.ok), max_abs_diff=v.max_abs_diff, rss_peak_mb=round(_rss_mb()))
    rec["ok"] = rec["shapes_same"] and rec["reduced"] and rec["verify_ok"]
    if not rec["ok"]:
        why = [w for w, bad in (("output shape changed", not rec["shapes_same"]),
                                ("nothing removed", not rec["reduced"]),
                                (f"verify |diff|={v.max_abs_diff:.2e} {v.detail}",
                                 not rec["verify_ok"])) if bad]
        rec["reason"] = "; ".join(why)
    return rec


def _child(family: str, name: str) -> None:
    try:
        rec = run_one(family, name)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        rec = {"family": family, "model": name, "ok": False, "forward": False,
               "reason": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
               "rss_peak_mb": round(_rss_mb())}
    print("RESULT " + json.dumps(rec), flush=True)


# ----------------------------------------------------------------------------- driver
def _load(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["model"]] = r
    return done


def _spawn(family: str, name: str, timeout: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", family, name]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"), OMP_NUM_THREADS="1")
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           check=False)
    except subprocess.TimeoutExpired:
        return {"family": family, "model": name, "ok": False, "reason": f"timeout {timeout}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if lines:
        rec = json.loads(lines[-1][7:])
    else:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
        rec = {"family": family, "model": name, "ok": False,
               "reason": f"process died (rc={p.returncode}): {tail}"}
    rec["wall_s"] = round(time.perf_counter() - t, 1)
    return rec


def markdown(results: dict[str, dict]) -> str:
    header = ("| family | model | result | params kept | verify max\\|Δ\\| | engine s | "
              "peak RSS MB (plan / +apply / all) | reason |")
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    order = {f: i for i, f in enumerate(["classification", "segmentation", "detection", "video",
                                         "other"])}
    for r in sorted(results.values(), key=lambda r: (order.get(r["family"], 9), r["model"])):
        diff = r.get("max_abs_diff")
        rows.append("| {} | {} | {} | {} | {} | {} | {} / {} / {} | {} |".format(
            r["family"], r["model"], "pass" if r.get("ok") else "FAIL",
            r.get("params_kept", "-"), "-" if diff is None else f"{diff:.1e}",
            r.get("engine_s", "-"), r.get("rss_plan_mb", "-"), r.get("rss_engine_mb", "-"),
            r.get("rss_peak_mb", "-"), r.get("reason", "").replace("|", "/")))
    by_fam: dict[str, list[bool]] = {}
    for r in results.values():
        by_fam.setdefault(r["family"], []).append(bool(r.get("ok")))
    summary = ", ".join(f"{f}: {sum(v)}/{len(v)}" for f, v in sorted(by_fam.items(),
                                                                    key=lambda kv: order[kv[0]]))
    head = (f"Pass = forward works, output shapes unchanged, parameters reduced, `pk.verify` "
            f"holds (max |Δ| ≤ 1e-4). Ratio {RATIO}, random weights, no per-model hints. "
            f"**{summary}**. Machine: {platform.machine()} {os.cpu_count()} cores "
            f"(shared), Python {platform.python_version()}.\n\n")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--family", choices=["classification", "segmentation", "detection",
                                         "video", "other"])
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--size", type=int, default=0,
                    help="classification input size (default: 64, or what the model needs)")
    ap.add_argument("--markdown-only", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "coverage.jsonl")
    ap.add_argument("--child", nargs=2, metavar=("FAMILY", "NAME"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    if a.size:
        os.environ["PK_COVERAGE_SIZE"] = str(a.size)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    done = _load(a.out)
    todo = [(f, n) for f, n in all_models()
            if (not a.models or n in a.models) and (not a.family or f == a.family)]
    for fam, name in todo:
        if a.markdown_only or (name in done and not a.force):
            continue
        rec = _spawn(fam, name, a.timeout)
        done[name] = rec
        with open(a.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"{fam:15s} {name:28s} {'pass' if rec.get('ok') else 'FAIL'} "
              f"{rec.get('reason', '')[:120]}", flush=True)
    (a.out.with_suffix(".md")).write_text(markdown(done))


if __name__ == "__main__":
    main()
