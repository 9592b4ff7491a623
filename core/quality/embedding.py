"""Sentence embeddings for the automatic scorers: all-MiniLM-L6-v2 on ONNX Runtime with `tokenizers`.

The model is built by set-up (core.catalog.embedder) into data/models/embedder/<id>/: model.onnx (the
BERT encoder), tokenizer.json, embedder.json (pooling, max length). Here: tokenise (truncated at the
model's max length), run the encoder, mean-pool over real tokens, L2-normalise; cosine similarity is
then a dot product. The model loads once per process (load_embedder is cached); one intra-op thread,
so scoring never takes the cores from a model being measured.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from core.errors import UserError

BATCH = 32


class Embedder:
    def __init__(self, folder: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((folder / "embedder.json").read_text(encoding="utf-8"))
        self.folder = folder
        self.dim = int(meta["dim"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(meta.get("max_seq_length", 256)))
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) unit vectors; a text seen before in this process is not encoded again."""
        todo = sorted({t for t in texts if t not in self._cache}, key=len)   # similar lengths pad less
        for i in range(0, len(todo), BATCH):
            chunk = todo[i:i + BATCH]
            enc = self.tokenizer.encode_batch(chunk)
            ids = np.asarray([e.ids for e in enc], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
            types = np.asarray([e.type_ids for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for t, v in zip(chunk, pooled):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


def embedder_folder() -> Path:
    from core.catalog.embedder import embedder_dir

    return embedder_dir()


def available() -> bool:
    from core.catalog.embedder import is_complete

    return is_complete(embedder_folder())


@functools.lru_cache(maxsize=2)
def _load(folder: str) -> Embedder:
    return Embedder(Path(folder))


def load_embedder() -> Embedder:
    """The embedding model, loaded once; UserError in one line when set-up has not built it."""
    folder = embedder_folder()
    if not available():
        raise UserError(f"the sentence-embedding model is not built ({folder} is missing or incomplete): "
                        "run `python -m core setup-models`")
    return _load(str(folder))
