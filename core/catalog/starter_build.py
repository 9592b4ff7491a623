"""Model conversion steps that run INSIDE the build venv (.venv-build), never in the app's venv.

Standalone on purpose: it imports nothing from `core` (the build venv does not have the app's packages,
and the app's venv does not have torch/transformers). `core.starter` runs it as a subprocess:

    .venv-build/bin/python core/starter_build.py hf   --gguf FILE --out HF_DIR
    .venv-build/bin/python core/starter_build.py onnx --hf HF_DIR --out OUT_DIR --precision int4 --cache DIR
                                                      [--chat-template FILE]

Each step writes into the folder it is given; the caller builds into a temp folder and renames it when
the step succeeded, so an interrupted run resumes from the last completed step.
On failure the last line on stderr is a one-line reason ("error: ...") and the exit code is 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return 1


def gguf_to_hf(gguf: Path, out: Path) -> None:
    """GGUF weights -> Hugging Face folder (fp32 safetensors, config, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32)
    # A GGUF-loaded model can be marked as quantized, which makes save_pretrained refuse to save.
    for attr in ("is_quantized", "hf_quantizer"):
        if getattr(model, attr, None):
            try:
                setattr(model, attr, None if attr == "hf_quantizer" else False)
            except Exception:  # read-only property in some versions
                pass
    if getattr(model.config, "quantization_config", None) is not None:
        try:
            del model.config.quantization_config
        except Exception:
            pass
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    add_special_tokens_from_gguf(gguf, out / "tokenizer.json")
    # save_pretrained may write a sentencepiece tokenizer.model as large as the GGUF: the runtime uses tokenizer.json.
    stray = out / "tokenizer.model"
    if stray.exists() and (out / "tokenizer.json").exists():
        stray.unlink()


def add_special_tokens_from_gguf(gguf: Path, tokenizer_json: Path) -> None:
    """Declare the GGUF's control and user-defined tokens as added tokens of tokenizer.json.

    transformers 4.57 keeps only pad/eos/bos/unk for a SentencePiece GGUF: a chat marker such as
    Gemma's <start_of_turn> would then be split into plain text pieces by the runtime's tokenizer.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    types_field = reader.fields.get("tokenizer.ggml.token_type")
    if tokens_field is None or types_field is None or not tokenizer_json.exists():
        return
    names = [bytes(tokens_field.parts[i]).decode("utf-8", errors="replace") for i in tokens_field.data]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    added = data.setdefault("added_tokens", [])
    present = {entry["id"] for entry in added}
    control, user_defined = 3, 4  # llama.cpp token types
    for index, (name, kind) in enumerate(zip(names, types)):
        if kind in (control, user_defined) and index not in present:
            added.append({"id": index, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": kind == control})
    added.sort(key=lambda entry: entry["id"])
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def hf_to_onnx(hf: Path, out: Path, precision: str, cache: Path, chat_template: Path | None,
               eos_tokens: list[str] | None = None) -> None:
    """Hugging Face folder -> ONNX Runtime GenAI folder (model.onnx, genai_config.json, tokenizer)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf), "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(cache),
        "--extra_options", "hf_token=false",
    ]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        sys.stderr.write("\n".join(lines[-30:]) + "\n")
        raise RuntimeError(f"onnxruntime-genai builder failed: {lines[-1] if lines else 'no output'}")
    fix_tokenizer(out)
    if chat_template is not None:
        set_chat_template(out, chat_template.read_text(encoding="utf-8"))
    if eos_tokens:
        add_eos_tokens(out, eos_tokens)
    stray = out / "tokenizer.model"
    if stray.exists() and (out / "tokenizer.json").exists():
        stray.unlink()


def fix_tokenizer(folder: Path) -> None:
    """Rewrite a GGUF-derived tokenizer.json into the layout the GenAI runtime's tokenizer reads.

    transformers 4.57 turns a GGUF vocabulary into a tokenizer.json the runtime mis-reads:
    - byte-level BPE (SmolLM2, GPT-2 style): the decoder is a SentencePiece-style sequence with
      byte fallback, so the runtime prints raw byte symbols ("Ċ" for a newline). Use the plain
      ByteLevel decoder and no byte fallback, as the original tokenizer has.
    - SentencePiece vocabularies (Gemma 3) come out as a Unigram model (vocab as a list), which the
      runtime rejects ("type must be object, but is array"). Gemma's own tokenizer.json is BPE with
      byte fallback: rebuild that, deriving the merges from the vocabulary and its scores as
      transformers' SentencePieceExtractor does.
    """
    path = folder / "tokenizer.json"
    if not path.exists():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    changed = False
    if model.get("type") == "BPE" and "ByteLevel" in json.dumps(data.get("pre_tokenizer")):
        data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
        model["byte_fallback"] = False
        changed = True
    elif model.get("type") == "Unigram":
        data["model"] = unigram_to_bpe(model)
        changed = True
    if changed:
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def unigram_to_bpe(model: dict) -> dict:
    """A SentencePiece-BPE vocabulary stored as Unigram (pieces with scores) -> an equivalent BPE model."""
    pieces = [entry[0] for entry in model["vocab"]]
    scores = {entry[0]: float(entry[1]) for entry in model["vocab"]}
    vocab = {piece: index for index, piece in enumerate(pieces)}
    merges = []
    for merged, score in scores.items():
        local = []
        for cut in range(1, len(merged)):
            left, right = merged[:cut], merged[cut:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    unk_id = model.get("unk_id")
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": pieces[unk_id] if isinstance(unk_id, int) else None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": bool(model.get("byte_fallback", True)),
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [[left, right] for left, right, _ in merges],
    }


def add_eos_tokens(folder: Path, tokens: list[str]) -> None:
    """Also stop generation at `tokens` (e.g. Gemma's <end_of_turn>): genai_config.json eos_token_id list."""
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {entry["content"]: entry["id"] for entry in data.get("added_tokens", [])}
    vocab = data.get("model", {}).get("vocab", {})
    config_path = folder / "genai_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    eos = config["model"].get("eos_token_id")
    eos = list(eos) if isinstance(eos, list) else [eos] if eos is not None else []
    for token in tokens:
        token_id = ids.get(token, vocab.get(token) if isinstance(vocab, dict) else None)
        if token_id is None:
            raise ValueError(f"end-of-sequence token {token!r} is not in the vocabulary")
        if token_id not in eos:
            eos.append(token_id)
    config["model"]["eos_token_id"] = eos
    config_path.write_text(json.dumps(config, indent=4), encoding="utf-8")


def set_chat_template(folder: Path, template: str) -> None:
    """Put the chat template where both readers look: tokenizer_config.json and chat_template.jinja."""
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starter_build", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p_hf = sub.add_parser("hf", help="GGUF -> Hugging Face folder")
    p_hf.add_argument("--gguf", type=Path, required=True)
    p_hf.add_argument("--out", type=Path, required=True)
    p_onnx = sub.add_parser("onnx", help="Hugging Face folder -> ONNX Runtime GenAI folder")
    p_onnx.add_argument("--hf", type=Path, required=True)
    p_onnx.add_argument("--out", type=Path, required=True)
    p_onnx.add_argument("--precision", choices=["int4", "fp32", "fp16"], required=True)
    p_onnx.add_argument("--cache", type=Path, required=True)
    p_onnx.add_argument("--chat-template", type=Path, default=None)
    p_onnx.add_argument("--eos-token", action="append", default=[], help="extra end-of-sequence token (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.step == "hf":
            gguf_to_hf(args.gguf, args.out)
        else:
            hf_to_onnx(args.hf, args.out, args.precision, args.cache, args.chat_template, args.eos_token)
    except Exception as exc:  # one line for the caller; details above it on stderr
        import traceback

        traceback.print_exc()
        return _fail(f"{type(exc).__name__}: {exc}")
    if args.step == "onnx":
        shutil.rmtree(args.cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
