"""A GGUF file's own vocabulary and metadata, read with llama_cpp (``vocab_only``: no weights loaded).

Token counts for the llama.cpp engine (it sends no usage when streaming), the model's context window
(``<arch>.context_length``), the shape of its KV cache and its chat template.
"""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def _quiet_stderr():
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stderr(null):   # llama_cpp's log callback prints to sys.stderr
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class GgufTokenizer:
    """Counts tokens with the GGUF's own vocabulary (no weights loaded); reads the GGUF's metadata
    (context window, the shape of its KV cache, its chat template)."""

    def __init__(self, path: str):
        from llama_cpp import Llama
        with _quiet_stderr():   # llama.cpp prints context warnings from C even with verbose=False
            self._llm = Llama(model_path=path, vocab_only=True, verbose=False)
        self.metadata: dict = dict(getattr(self._llm, "metadata", None) or {})
        self._formatter = None

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _meta_int(self, key: str) -> int | None:
        arch = self.metadata.get("general.architecture", "llama")
        try:
            return int(self.metadata[f"{arch}.{key}"])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def context_length(self) -> int | None:
        """The window the model was trained for (GGUF ``<arch>.context_length``)."""
        return self._meta_int("context_length")

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int | None:
        """KV cache bytes per token of context: 2 (K and V) x layers x KV heads x head size x dtype bytes
        (llama.cpp's default cache type is f16: 2 bytes)."""
        layers, kv_heads = self._meta_int("block_count"), self._meta_int("attention.head_count_kv")
        head = self._meta_int("attention.key_length")
        if head is None:
            emb, heads = self._meta_int("embedding_length"), self._meta_int("attention.head_count")
            head = emb // heads if emb and heads else None
        if kv_heads is None:
            kv_heads = self._meta_int("attention.head_count")
        if not (layers and kv_heads and head):
            return None
        return 2 * layers * kv_heads * head * dtype_bytes

    def prompt_tokens(self, messages: list[dict]) -> int | None:
        """Tokens of the whole prompt as the server builds it: the GGUF's chat template over the messages,
        tokenized as llama-cpp-python's server does (BOS added unless the template starts with it)."""
        template = self.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def token(key):
                tid = self.metadata.get(key)
                try:
                    return self._llm._model.token_get_text(int(tid)) if tid is not None else ""
                except Exception:
                    return ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=token("tokenizer.ggml.eos_token_id"),
                                                  bos_token=token("tokenizer.ggml.bos_token_id"))
        prompt = self._formatter(messages=messages).prompt
        ids = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        bos = self._llm.token_bos()
        if len(ids) > 1 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        return len(ids)


def gguf_context_length(path: str) -> int | None:
    """A GGUF's context window from its metadata, or None (unreadable, llama_cpp missing)."""
    try:
        return GgufTokenizer(path).context_length
    except Exception:
        return None
