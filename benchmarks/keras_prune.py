"""Keras 3 (torch backend): a small CNN on scikit-learn's digits, pruned two ways.

1. Weight pruning with TF-MOT's recipe: the trained model is fine-tuned for 2 epochs under
   ``PolynomialDecay(0.50 -> 0.80, begin_step=0, end_step=2 epochs)`` with
   ``UpdatePruningStep``, then ``strip_pruning`` (80% of every kernel zero).
2. Structural: ``prune_structured(ratio=0.5)`` then 3 epochs of fine-tuning.

Accuracy on a held-out split, kernel sparsity, parameters, gzipped weight size, and latency of
``model(x)`` (dense vs pruned, interleaved in one process, one torch thread).

    KERAS_BACKEND=torch python benchmarks/keras_prune.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import prunekit.keras as sparsity  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock, interleaved_samples  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

BATCH = 32
TFMOT_END_STEP = 844  # TF-MOT's MNIST example: ceil(54,000 / 128) * 2 epochs, frequency 100


def data(seed: int):
    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    return train_test_split(x, d.target, test_size=0.25, random_state=seed, stratify=d.target)


def cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.BatchNormalization(name="bn1"),
        keras.layers.Conv2D(64, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(128, activation="relu", name="fc"),
        keras.layers.Dense(10, name="out"),
    ])


def compiled(model, lr=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y) -> float:
    logits = keras.ops.convert_to_numpy(model.predict(x, batch_size=256, verbose=0))
    return float((logits.argmax(1) == y).mean())


def kernel_sparsity(model) -> float:
    ks = [w.numpy() for layer in model.layers for w in layer.weights if w.name == "kernel"]
    return sum(int((k == 0).sum()) for k in ks) / sum(k.size for k in ks)


def gz_weights(model) -> int:
    """Bytes of the gzipped weights file (layer weights only, no optimizer state), as TF-MOT
    compares gzipped files; the full ``model.save`` file is reloaded with plain Keras first."""
    with tempfile.TemporaryDirectory() as d:
        model.save(Path(d) / "m.keras")
        keras.models.load_model(Path(d) / "m.keras")  # plain Keras reloads it
        clean = keras.models.clone_model(model)  # uncompiled: no optimizer state in the file
        clean.set_weights(model.get_weights())
        clean.save_weights(Path(d) / "m.weights.h5")
        return len(gzip.compress((Path(d) / "m.weights.h5").read_bytes(), 9))


def run_seed(seed: int, epochs: int):
    x_tr, x_te, y_tr, y_te = data(seed)
    dense = compiled(cnn(seed))
    dense.fit(x_tr, y_tr, batch_size=BATCH, epochs=epochs, verbose=0)
    steps = int(np.ceil(len(x_tr) / BATCH))
    sched = sparsity.PolynomialDecay(initial_sparsity=0.50, final_sparsity=0.80, begin_step=0,
                                     end_step=2 * steps, frequency=10)
    pruned = compiled(sparsity.prune_low_magnitude(dense, pruning_schedule=sched))
    pruned.fit(x_tr, y_tr, batch_size=BATCH, epochs=2, verbose=0,
               callbacks=[sparsity.UpdatePruningStep()])
    sparse = sparsity.strip_pruning(pruned)
    pruned.fit(x_tr, y_tr, batch_size=BATCH, epochs=3, verbose=0,
               callbacks=[sparsity.UpdatePruningStep()])  # past end_step: masks fixed at 80%
    sparse_ft = sparsity.strip_pruning(pruned)
    dense_more = keras.models.clone_model(dense)
    dense_more.set_weights(dense.get_weights())
    compiled(dense_more).fit(x_tr, y_tr, batch_size=BATCH, epochs=2, verbose=0)  # same steps
    long_epochs = int(np.ceil(TFMOT_END_STEP / steps))
    long_sched = sparsity.PolynomialDecay(initial_sparsity=0.50, final_sparsity=0.80,
                                          begin_step=0, end_step=TFMOT_END_STEP)  # frequency 100
    long = compiled(sparsity.prune_low_magnitude(dense, pruning_schedule=long_sched))
    long.fit(x_tr, y_tr, batch_size=BATCH, epochs=long_epochs, verbose=0,
             callbacks=[sparsity.UpdatePruningStep()])
    sparse_long = sparsity.strip_pruning(long)
    dense_long = keras.models.clone_model(dense)
    dense_long.set_weights(dense.get_weights())
    compiled(dense_long).fit(x_tr, y_tr, batch_size=BATCH, epochs=long_epochs, verbose=0)
    small = sparsity.prune_structured(dense, x_tr[:64], ratio=0.5)
    one_shot = accuracy(small, x_te, y_te)
    compiled(small).fit(x_tr, y_tr, batch_size=BATCH, epochs=3, verbose=0)
    return {"dense": dense, "sparse": sparse, "sparse_ft": sparse_ft, "small": small, "x": x_te, "y": y_te,
            "one_shot": one_shot, "end_step": 2 * steps, "dense_more": dense_more,
            "sparse_long": sparse_long, "dense_long": dense_long,
            "long_steps": long_epochs * steps}


def macs(model) -> int:
    """Multiply-accumulates of the Conv2D and Dense layers for one image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, cout = layer.output.shape[1:]
            kh, kw, cin, _ = layer.kernel.shape
            total += h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def latency(models: dict, x: np.ndarray, batch: int, repeats: int):
    pool = [torch.from_numpy(x[i * batch % len(x):][:batch]) for i in range(8)]
    pool = [p for p in pool if len(p) == batch]

    def fn(m):
        def call(inp):
            with torch.inference_mode():
                return m(inp, training=False)
        return call

    return interleaved_samples({k: fn(m) for k, m in models.items()}, pool, warmup=5,
                               repeats=repeats, numbers=dict.fromkeys(models, 1 if batch > 1 else 5),
                               clock=ProcessCpuClock())


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load_start = load_average()
    runs = [run_seed(int(s), args.epochs) for s in args.seeds.split(",")]
    names = ("dense", "dense_more", "sparse", "sparse_ft", "dense_long", "sparse_long", "small")
    accs = {k: [accuracy(r[k], r["x"], r["y"]) for r in runs] for k in names}
    one_shot = [r["one_shot"] for r in runs]
    r0 = runs[0]

    def cell(v):
        return f"{100 * np.mean(v):.2f} ± {100 * np.std(v):.2f}"

    acc_rows = [
        [f"dense ({args.epochs} epochs)", cell(accs["dense"]), f"{r0['dense'].count_params():,}",
         f"{kernel_sparsity(r0['dense']):.2f}", f"{gz_weights(r0['dense']) / 1e3:.1f}"],
        [f"dense + 2 more epochs ({r0['end_step']} steps, as the 80% row)",
         cell(accs["dense_more"]), f"{r0['dense_more'].count_params():,}",
         f"{kernel_sparsity(r0['dense_more']):.2f}", "-"],
        ["80% weights: PolynomialDecay(0.5->0.8), 2 epochs, strip", cell(accs["sparse"]),
         f"{r0['sparse'].count_params():,}", f"{kernel_sparsity(r0['sparse']):.2f}",
         f"{gz_weights(r0['sparse']) / 1e3:.1f}"],
        ["80% weights, then 3 more epochs with the masks fixed", cell(accs["sparse_ft"]),
         f"{r0['sparse_ft'].count_params():,}", f"{kernel_sparsity(r0['sparse_ft']):.2f}",
         f"{gz_weights(r0['sparse_ft']) / 1e3:.1f}"],
        [f"dense + {r0['long_steps']} more steps (as the next row)", cell(accs["dense_long"]),
         f"{r0['dense_long'].count_params():,}", f"{kernel_sparsity(r0['dense_long']):.2f}", "-"],
        [f"80% weights: TF-MOT's step count, end_step={TFMOT_END_STEP}, frequency 100 "
         f"({r0['long_steps']} steps), strip", cell(accs["sparse_long"]),
         f"{r0['sparse_long'].count_params():,}", f"{kernel_sparsity(r0['sparse_long']):.2f}",
         f"{gz_weights(r0['sparse_long']) / 1e3:.1f}"],
        ["50% structural, one-shot (no fine-tuning)", cell(one_shot),
         f"{r0['small'].count_params():,}", f"{kernel_sparsity(r0['small']):.2f}", "-"],
        ["50% structural + 3 epochs", cell(accs["small"]), f"{r0['small'].count_params():,}",
         f"{kernel_sparsity(r0['small']):.2f}", f"{gz_weights(r0['small']) / 1e3:.1f}"],
    ]
    tfmot_rows = [
        ["schedule", "PolynomialDecay(0.50, 0.80, begin_step=0, end_step=2 epochs), power 3, "
         "frequency 100; end_step = 844 steps on MNIST (54,000 images, batch 128): masks "
         "updated at steps 0, 100, ..., 800, then 44 steps with the masks fixed",
         f"2 epochs on digits are {r0['end_step']} steps: frequency 10 gives the same 9 mask "
         f"updates (0, 10, ..., 80; with frequency 100 only step 0 would prune, to 50%); and "
         f"TF-MOT's own numbers, end_step={TFMOT_END_STEP}, frequency 100, "
         f"{r0['long_steps']} steps"],
        ["step counter", "UpdatePruningStep: step = optimizer.iterations before each batch; "
         "mask update, then weights x mask, before each training forward",
         "same (prunekit.keras.UpdatePruningStep, PruneLowMagnitude.call)"],
        ["kernel sparsity after strip_pruning", "80% (final_sparsity)",
         f"{100 * kernel_sparsity(r0['sparse']):.1f}%"],
        ["gzipped size vs dense", "about 3x smaller (MNIST tutorial)",
         f"{gz_weights(r0['dense']) / gz_weights(r0['sparse']):.2f}x smaller"],
        ["accuracy after pruning", "close to the baseline (MNIST tutorial)",
         f"{r0['end_step']} steps: "
         f"{100 * (np.mean(accs['sparse']) - np.mean(accs['dense_more'])):+.2f} points vs "
         f"dense trained for the same steps; {r0['long_steps']} steps (TF-MOT's count): "
         f"{100 * (np.mean(accs['sparse_long']) - np.mean(accs['dense_long'])):+.2f} vs dense "
         f"trained for those steps; "
         f"{100 * (np.mean(accs['sparse_ft']) - np.mean(accs['dense_more'])):+.2f} after 3 "
         f"more epochs at 80%"],
        ["latency", "unchanged by zeros in dense kernels (speedups need sparse kernels)",
         "see the latency table"],
    ]
    lat_rows = []
    models = {"dense": r0["dense"], "80% weights": r0["sparse"], "50% structural": r0["small"]}
    for batch in (1, 256):
        st = latency(models, r0["x"], batch, args.repeats)
        for name, s in st.items():
            r = np.array(st["dense"].samples) / np.array(s.samples)
            boots = np.median(np.random.default_rng(0).choice(r, (2000, r.size)), axis=1)
            lo, hi = np.percentile(boots, [2.5, 97.5])
            med = float(np.median(r))
            lat_rows.append([batch, name, f"{s.median:.3f}", f"{s.p10:.3f}-{s.p90:.3f}",
                             f"{med:.2f}x", f"{lo:.2f}-{hi:.2f}",
                             "yes" if (hi - lo) / med < 0.2 else "no (wide interval)"])
    load_end = load_average()
    tables = [
        {"title": "Small CNN on digits (Keras 3, torch backend): accuracy and size",
         "columns": ["model", "test accuracy % (mean ± sd, seeds)", "params",
                     "kernel sparsity", "gzipped weights kB"],
         "rows": acc_rows,
         "notes": f"scikit-learn digits, 75/25 stratified split per seed, seeds {args.seeds}; "
                  f"Adam 1e-3, batch {BATCH}; params/size/sparsity from seed {runs and args.seeds.split(',')[0]}"},
        {"title": "TF-MOT's documented behaviour for the same schedule vs prunekit.keras",
         "columns": ["item", "TF-MOT (documentation, Pruning in Keras example)", "prunekit.keras (measured)"],
         "rows": tfmot_rows,
         "notes": "TF-MOT runs on Keras 2 / TensorFlow only; its tutorial figures are for MNIST "
                  "and were not re-run here"},
        {"title": "Latency of model(x) in eager Keras (torch backend, 1 thread)",
         "columns": ["batch", "model", "median ms", "p10-p90 ms",
                     "speedup vs dense (median of ratios)", "95% CI", "reliable"],
         "rows": lat_rows,
         "notes": f"{args.repeats} interleaved rounds, process CPU time, rotating test images; "
                  f"batch 1 samples average 5 calls; predicted from MACs: structural "
                  f"{macs(r0['dense']) / macs(r0['small']):.2f}x ({macs(r0['dense']):,} -> "
                  f"{macs(r0['small']):,} MACs per image)"},
    ]
    caveats = ["latency is Keras eager call overhead plus compute; at batch 1 the overhead "
               "dominates such a small model",
               "zeroed weights stay in dense kernels: the 80% model computes as much as the "
               "dense one"]
    if float(load_start.split()[2]) > 2 or float(load_end.split()[2]) > 2:
        caveats.append("the machine was shared (load average above its 2 cores) while measuring")
    path = write_result("keras_prune", "Keras 3: weight and structural pruning of a digits CNN",
                        tables, command="KERAS_BACKEND=torch python benchmarks/keras_prune.py "
                        + " ".join(argv), caveats=caveats,
                        load=f"{load_start} at start, {load_end} at end")
    print(path)
    for t in tables:
        print(t["title"])
        for r in t["rows"]:
            print("  ", r)


if __name__ == "__main__":
    main(sys.argv[1:])
