"""The sentence-embedding model's conversion, run INSIDE the build venv (.venv-build), never in the app's venv.

Standalone like starter_build.py (imports nothing from `core`). `core.catalog.embedder` runs it as a subprocess:

    .venv-build/bin/python core/catalog/embedder_build.py --src ST_DIR --out OUT_DIR

ST_DIR is the sentence-transformers folder the PyPI package ships (config.json, model.safetensors,
tokenizer.json, 1_Pooling/config.json). OUT_DIR receives model.onnx (fp32: the BERT encoder, inputs
input_ids / attention_mask / token_type_ids, output last_hidden_state; pooling is done by the app),
tokenizer.json and embedder.json (pooling, normalisation, max length). A check compares the ONNX
output with torch's on two sentences before anything is written as done.
On failure the last line on stderr is "error: ..." and the exit code is 1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return 1


def convert(src: Path, out: Path) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src))
    model = AutoModel.from_pretrained(str(src), torch_dtype=torch.float32).eval()
    sample = tok(["Kofi renews the staging certificate before noon.", "Release 4.2 stays on Monday"],
                 padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    dyn = {n: {0: "batch", 1: "seq"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                          str(onnx_path), input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
        ref = model(**sample).last_hidden_state.numpy()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: sample[n].numpy().astype(np.int64) for n in names})[0]
    err = float(np.abs(got - ref).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX output differs from torch by {err:.2e}")
    shutil.copy2(src / "tokenizer.json", out / "tokenizer.json")
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text()) if (src / "1_Pooling" / "config.json").exists() else {}
    st = json.loads((src / "sentence_bert_config.json").read_text()) if (src / "sentence_bert_config.json").exists() else {}
    meta = {"pooling": "mean" if pooling.get("pooling_mode_mean_tokens", True) else "cls", "normalize": True,
            "max_seq_length": int(st.get("max_seq_length", 256)), "dim": int(got.shape[-1]),
            "max_abs_diff_vs_torch": err}
    (out / "embedder.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        meta = convert(Path(a.src), Path(a.out))
    except Exception as exc:  # one line for the caller
        return _fail(f"{type(exc).__name__}: {exc}")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
