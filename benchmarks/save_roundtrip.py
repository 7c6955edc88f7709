"""Save -> load of every pruned torchvision classification model, built the ordinary way.

For each model: ``torchvision.models.get_model(name, weights=None)`` (random weights), structural
pruning at a 50% channel ratio on a small input, ``pk.save(pruned, d)``, ``pk.load(d)``, and the
largest absolute difference between the two models' outputs on the same input. A model passes
when the outputs are identical, or when ``save`` refuses at save time with one line. GoogLeNet and
Inception v3 are also built without their auxiliary heads (``aux_logits=False``), and a ViT with
``image_size=64``, since constructor arguments must survive the round trip.

Each model runs in its own subprocess with a time limit; results are appended to a JSON-lines
file and a re-run skips the models already there (``--force`` redoes them).

Usage:
    python benchmarks/save_roundtrip.py                  # every classification model
    python benchmarks/save_roundtrip.py regnet_x_400mf "googlenet(aux_logits=False)"
    python benchmarks/save_roundtrip.py --table-only     # just rewrite the result file
Outputs: benchmarks/results/save_roundtrip.jsonl and
benchmarks/results/structural_save_roundtrip.json
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSONL = HERE / "results" / "save_roundtrip.jsonl"
RATIO = 0.5
# the smallest input each architecture accepts comfortably (64x64 otherwise)
SIZE = {"inception_v3": 96, "vit_b_16": 224, "vit_b_32": 224, "vit_l_16": 224, "vit_l_32": 224,
        "vit_h_14": 224, "maxvit_t": 224}
VARIANTS = ["googlenet(aux_logits=False)", "inception_v3(aux_logits=False)",
            "vit_b_16(image_size=64)"]


def parse(entry: str) -> tuple[str, dict]:
    """``"name(k=v, ...)"`` -> ``(name, {k: v})``."""
    name, _, rest = entry.partition("(")
    kwargs = {}
    for item in filter(None, (s.strip() for s in rest.rstrip(")").split(","))):
        key, _, value = item.partition("=")
        kwargs[key.strip()] = ast.literal_eval(value.strip())
    return name, kwargs


def all_models() -> list[str]:
    import torchvision.models as tvm

    return list(tvm.list_models(module=tvm)) + VARIANTS


def run_one(entry: str, max_params: float) -> dict:
    """Build, prune, save, load and compare one model (inside the child process)."""
    import torch
    import torchvision

    import prunekit as pk

    name, kwargs = parse(entry)
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    n0 = sum(p.numel() for p in model.parameters())
    size = kwargs.get("image_size", SIZE.get(name, 64))
    rec: dict = {"model": entry, "input": f"{size}x{size}", "params": n0}
    if n0 > max_params:
        return dict(rec, status="skipped", reason=f"{n0 / 1e6:.0f}M parameters, over "
                                                  f"--max-params {max_params / 1e6:.0f}M")
    x = torch.randn(1, 3, size, size)
    t = time.perf_counter()
    # the value trial does not change what is saved; off to keep the sweep short
    pruned = pk.plan_structured(model, x, ratio=RATIO, check=False).apply()
    with torch.no_grad():
        ref = pruned(x)
    rec["params_kept"] = round(sum(p.numel() for p in pruned.parameters()) / n0, 3)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            pk.save(pruned, Path(tmp) / "m")
        except ValueError as err:
            lines = str(err).strip().splitlines()
            return dict(rec, status="refused at save",
                        reason=lines[0].replace(str(Path(tmp) / "m"), "DIR")[:300],
                        one_line=len(lines) == 1)
        back = pk.load(Path(tmp) / "m")
        with torch.no_grad():
            out = back(x)
    diff = float((out - ref).abs().max())
    rec.update(max_abs_diff=diff, seconds=round(time.perf_counter() - t, 1),
               status="identical" if diff == 0.0 else "DIFFERENT")
    return rec


def _child(entry: str, max_params: float) -> None:
    try:
        rec = run_one(entry, max_params)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        rec = {"model": entry, "status": "FAILED",
               "reason": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
    print("RESULT " + json.dumps(rec), flush=True)


def _spawn(entry: str, timeout: int, max_params: float) -> dict:
    cmd = [sys.executable, __file__, "--child", entry, "--max-params", str(max_params)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": entry, "status": "FAILED", "reason": f"over the {timeout} s limit"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": entry, "status": "FAILED", "reason": f"exit {proc.returncode}: {tail[:300]}"}


def _read() -> dict[str, dict]:
    if not JSONL.exists():
        return {}
    recs = [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]
    return {r["model"]: r for r in recs}


def write_table(results: dict[str, dict], load: str | None = None) -> Path:
    from results_schema import write_result

    rows, counts = [], {}
    for entry, r in sorted(results.items()):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        diff = r.get("max_abs_diff")
        reason = re.sub(r"/tmp/\S+?/m\b", "DIR", r.get("reason", ""))
        rows.append([entry, r.get("input", ""), r.get("params_kept", ""), r["status"],
                     "" if diff is None else f"{diff:.1e}", reason])
    summary = [[k, v] for k, v in sorted(counts.items())] + [["models in the sweep", len(results)]]
    return write_result(
        "structural_save_roundtrip", "Save -> load of pruned torchvision classification models",
        [{"title": "Outcomes", "columns": ["outcome", "models"], "rows": summary,
          "notes": "identical: pk.load(pk.save(pruned)) gives outputs equal to the pruned "
                   "model's, bit for bit, on the same input"},
         {"title": "Per model", "columns": ["model", "input", "params kept", "outcome",
                                            "max |diff|", "reason"], "rows": rows,
          "notes": f"get_model(name, weights=None, ...), random weights, plan_structured "
                   f"ratio={RATIO} (check=False), apply, save, load, one input; max |diff| between the "
                   "pruned and the reloaded model's outputs"}],
        command="python benchmarks/save_roundtrip.py", load=load,
        caveats=["random weights: the check is about architecture and weights surviving the "
                 "round trip, not accuracy",
                 "models over --max-params are skipped (memory of a 4 GB process)"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="names, or name(k=v) with builder arguments")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--max-params", type=float, default=150e6)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--load", help="the load seen while the sweep ran (default: now)")
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.max_params)
        return
    done = _read()
    if not a.table_only:
        for entry in a.models or all_models():
            if entry in done and not a.force:
                continue
            rec = _spawn(entry, a.timeout, a.max_params)
            done[entry] = rec
            print(json.dumps(rec), flush=True)
            with JSONL.open("a") as f:
                f.write(json.dumps(rec) + "\n")
    print(write_table(done, a.load))


if __name__ == "__main__":
    main()
