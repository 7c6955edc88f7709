"""Deep Compression (pruning + trained weight sharing + Huffman coding) and prune + int8.

Han, Mao & Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
Quantization and Huffman Coding", ICLR 2016.

* :func:`share_weights` — per-layer k-means codebooks over the kept weights, trained by
  fine-tuning (:mod:`prunekit.compression.sharing`, :mod:`prunekit.compression.kmeans`);
* :func:`compress` / :func:`decompress` — the ``.pkc`` file: relative indices, codebook indices,
  Huffman coding, manifest with every stage's size (:mod:`prunekit.compression.pkc`);
* :func:`quantize` — int8 through ONNX Runtime's quantizer (:mod:`prunekit.compression.int8`).
"""

from prunekit.compression.int8 import Int8Model, quantize
from prunekit.compression.kmeans import kmeans_1d
from prunekit.compression.pkc import (
    CompressedFileError, compress, decompress, load_state_dict, read_manifest,
)
from prunekit.compression.sharing import (
    LayerShare, ShareReport, SharedWeight, codebook_of, share_weights, shared_modules, unshare,
)

__all__ = [
    "CompressedFileError", "Int8Model", "LayerShare", "ShareReport", "SharedWeight",
    "codebook_of", "compress", "decompress", "kmeans_1d", "load_state_dict", "quantize",
    "read_manifest", "share_weights", "shared_modules", "unshare",
]
