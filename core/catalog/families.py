"""Model families from model ids ("smollm2-135m-instruct-generic-cpu:1" -> "smollm"): a judge from a candidate's
family gets a warning (self-preference)."""
from __future__ import annotations

import re

KNOWN_FAMILIES = ("smollm", "gemma", "phi", "qwen", "llama", "mistral", "mixtral", "deepseek", "gpt", "claude",
                  "gemini", "olmo", "granite", "falcon", "tinyllama", "stablelm", "internlm", "yi", "command",
                  "ministral", "codestral", "starcoder", "nemotron")
PUBLISHERS = ("meta", "microsoft", "google", "hf", "huggingfacetb", "mistralai", "qwen", "openai", "ibm",
              "allenai", "nvidia", "deepseek-ai", "local")


def model_family(model: str) -> str:
    """The family of a model id: "smollm2-135m-instruct-generic-cpu:1" -> "smollm", "gemma-3-270m" -> "gemma"."""
    name = (model or "").strip().lower()
    name = re.split(r"[\\/]", name)[-1]                      # org/name or a file path
    name = re.sub(r"\.(gguf|onnx)$", "", name)
    for pub in PUBLISHERS:
        if name.startswith(pub + "-") or name.startswith(pub + "_"):
            name = name[len(pub) + 1:]
            break
    for fam in sorted(KNOWN_FAMILIES, key=len, reverse=True):
        if name.startswith(fam):
            return "llama" if fam == "tinyllama" else fam
    for fam in sorted(KNOWN_FAMILIES, key=len, reverse=True):
        if re.search(rf"(^|[^a-z]){fam}", name):
            return fam
    m = re.match(r"[a-z]+", name)
    return m.group(0) if m else name


def same_family_warnings(judge_model: str, candidates: list[str]) -> list[str]:
    fam = model_family(judge_model)
    out = []
    for c in sorted(set(candidates)):
        if model_family(c) == fam:
            out.append(f"judge {judge_model} is the same model family ({fam}) as candidate {c}: "
                       f"expect it to favour its own family's answers")
    return out
