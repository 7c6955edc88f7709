"""Train a tiny LLaMA-style causal LM (GQA) on Python's own standard library, offline, seeded.

The model is the subject of ``benchmarks/llm_oneshot.py`` (perplexity after one-shot pruning).
Corpus: the top-level ``*.py`` files of the running Python's standard library plus the English
help text of ``pydoc_data/topics.py``. Held out (never trained on) for perplexity: every 12th
stdlib file in sorted order (code) and the last 15% of the topics text (English docs). The
calibration text is a slice of the training text.

A byte-level BPE tokenizer (HF ``tokenizers``) is trained on the training text and saved with the
model, so the result is an ordinary Hugging Face directory::

    AutoModelForCausalLM.from_pretrained(dir); AutoTokenizer.from_pretrained(dir)

Output (outside git): ``$PRUNEKIT_CACHE/tiny-lm`` (default ``~/.cache/prunekit/tiny-lm``) with
``model/`` and ``data/{train,calib,heldout_code,heldout_docs}.txt``.

Usage::

    python benchmarks/train_tiny_lm.py    # 1600 steps, 2.0M params: ~8 min on 2 idle cores
    python benchmarks/train_tiny_lm.py --steps 20 --out /tmp/t  # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

SEED = 0
HOLDOUT_EVERY = 12
DOCS_HELDOUT = 0.15


def cache_dir() -> Path:
    root = os.environ.get("PRUNEKIT_CACHE", str(Path.home() / ".cache" / "prunekit"))
    return Path(root) / "tiny-lm"


def build_corpus() -> dict[str, str]:
    """train / calib / heldout_code / heldout_docs texts from the stdlib (deterministic)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(lib.glob("*.py"))
    read = lambda p: p.read_text(encoding="utf-8", errors="replace")  # noqa: E731
    held = [f for i, f in enumerate(files) if i % HOLDOUT_EVERY == 0]
    train_files = [f for f in files if f not in held]
    import pydoc_data.topics as topics

    docs = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    cut = int(len(docs) * (1 - DOCS_HELDOUT))
    train = "\n\n".join([read(f) for f in train_files] + [docs[:cut]])
    return {
        "train": train,
        "calib": train[len(train) // 3 : len(train) // 3 + 400_000],
        "heldout_code": "\n\n".join(read(f) for f in held),
        "heldout_docs": docs[cut:],
    }


def train_tokenizer(text: str, vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tk.train_from_iterator([text[i : i + 100_000] for i in range(0, len(text), 100_000)], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )


def make_model(vocab: int, args):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, max_position_embeddings=args.seqlen,
        tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0,
        pad_token_id=0,
    )
    return LlamaForCausalLM(cfg)


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    frac = (step - args.warmup) / max(args.steps - args.warmup, 1)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def quick_ppl(model, ids: torch.Tensor, seqlen: int, windows: int = 16) -> float:
    model.eval()
    n = min(windows, (ids.numel() - 1) // seqlen)
    x = ids[: n * seqlen].view(n, seqlen)
    loss = model(input_ids=x, labels=x).loss
    model.train()
    return float(loss.exp())


def train(args) -> None:
    torch.manual_seed(SEED)
    texts = build_corpus()
    tok = train_tokenizer(texts["train"], args.vocab)
    ids = torch.tensor(tok.encode(texts["train"]), dtype=torch.long)
    held = torch.tensor(tok.encode(texts["heldout_code"][:200_000]), dtype=torch.long)
    model = make_model(len(tok), args)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"train tokens {ids.numel():,}  params {nparams:,}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    t0, c0 = time.time(), time.process_time()
    for step in range(args.steps):
        starts = torch.randint(0, ids.numel() - args.seqlen - 1, (args.batch,), generator=gen)
        x = torch.stack([ids[s : s + args.seqlen] for s in starts.tolist()])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"step {step:5d} loss {loss.item():.3f} lr {lr_at(step, args):.2e} "
                  f"{time.time() - t0:6.0f}s", flush=True)
    ppl = quick_ppl(model, held, args.seqlen)
    print(f"held-out code ppl (16 windows): {ppl:.2f}  train time {time.time() - t0:.0f}s", flush=True)
    save(model, tok, texts, args, {"train_seconds": time.time() - t0,
                                   "train_cpu_seconds": time.process_time() - c0,
                                   "heldout_code_ppl_quick": ppl,
                                   "params": nparams, "train_tokens": ids.numel()})


def save(model, tok, texts: dict[str, str], args, info: dict) -> None:
    """Write model/, data/ and info.json into a temp dir, then move it into place."""
    out = Path(args.out) if args.out else cache_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-lm-", dir=out.parent))
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    (tmp / "data").mkdir()
    for k, v in texts.items():
        (tmp / "data" / f"{k}.txt").write_text(v, encoding="utf-8")
    (tmp / "info.json").write_text(json.dumps({**vars(args), **info, "seed": SEED}, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"saved to {out}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", dest="kv_heads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", dest="log_every", type=int, default=50)
    ap.add_argument("--out", default=None, help="output dir (default $PRUNEKIT_CACHE/tiny-lm)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train(args)


if __name__ == "__main__":
    main()
