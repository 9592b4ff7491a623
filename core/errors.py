"""Errors that reach the user as one line (CLI and pages), and the one redaction of secrets in any text.

Every page and the CLI show an error through ``one_line`` (``UserError.one_line()`` for a UserError): one
line, credentials masked (URL user:password@, password=, ?key=..., bearer tokens, key-shaped tokens).
``redact`` lives here, below every other module, so that the error boundary can use it; ``core.output``
re-exports it with the other escaping functions.
"""
from __future__ import annotations

import re
from typing import Any


class UserError(Exception):
    """A problem the user can act on: bad input, unreachable endpoint, missing model.

    Its message is shown on one line, without a traceback, with secrets masked (``one_line``).
    """

    def one_line(self, limit: int | None = None) -> str:
        return one_line(str(self), limit, whole=True)


# ---------------------------------------------------------------- secrets

_KEY_PREFIXED = re.compile(
    r"(?:\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_\-]{30,}|\bhf_[A-Za-z0-9]{20,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})")
_KEY_GENERIC = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{24,}={0,2}(?![A-Za-z0-9+/_\-])")
_KEY_HEX32 = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32}(?![0-9A-Za-z])")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/\-]{8,}=*")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
SECRET_PARAMS = ("key", "api-key", "api_key", "apikey", "token", "access_token", "auth", "sig", "signature",
                 "password", "passwd", "pwd", "secret", "client_secret", "code", "x-api-key")
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:%s)=)[^&\s#\"'<>]*" % "|".join(re.escape(p) for p in SECRET_PARAMS))
_KEY_FIELD = re.compile(r"""(?i)(["']?(?:api[-_]?key|authorization|password|secret|token)["']?\s*[:=]\s*["']?)"""
                        r"""(?!\*\*\*)[^\s"',}]{6,}""")
REDACTED = "***"


_HEX = set("0123456789abcdefABCDEF")


def _random_like(token: str) -> bool:
    """A long run mixing letters and digits the way generated keys do, not a name: model names are made of
    short parts (``SmolLM2-135M-Instruct-Q4_K_M``), paths of short folders; hashes (all hex, 40 or 64 long) are not keys."""
    for seg in re.split(r"[-_/]", token.rstrip("=")):
        digits = sum(c.isdigit() for c in seg)
        upper = sum(c.isupper() for c in seg)
        lower = sum(c.islower() for c in seg)
        if len(seg) >= 20 and digits >= 2 and upper >= 2 and lower >= 2:
            return True
        if len(seg) >= 32 and digits >= 4 and upper + lower >= 4 and not set(seg) <= _HEX:
            return True
    return False


def looks_like_key(value: str) -> bool:
    """True when `value` looks like a secret itself (sk-..., a JWT, a long random token) rather than a name."""
    value = (value or "").strip()
    if not value:
        return False
    if _KEY_PREFIXED.search(value) or _BEARER.search(value) or _KEY_HEX32.fullmatch(value):
        return True
    if len(value) >= 16 and not value.isupper() and sum(c.isdigit() for c in value) >= 3 and "_" not in value:
        return True
    return any(_random_like(m.group(0)) for m in _KEY_GENERIC.finditer(value))


# The values of the key variables this process read (core.catalog.endpoints.api_key): masked by value in every
# text, whatever their shape ("secret123" is no key-shaped token, but an endpoint may echo it in a 401 body).
_SECRET_VALUES: set[str] = set()
_secret_re: re.Pattern | None = None
MIN_SECRET = 4          # shorter values would mask ordinary words; no real key is that short


def remember_secret(value: str | None) -> None:
    """Mask ``value`` (an API key this process read) in every text ``redact`` sees from now on."""
    global _secret_re
    if not value or len(value) < MIN_SECRET or value in _SECRET_VALUES:
        return
    import json
    from urllib.parse import quote
    _SECRET_VALUES.update({value, json.dumps(value)[1:-1], quote(value, safe="")})
    forms = sorted((v for v in _SECRET_VALUES if len(v) >= MIN_SECRET), key=len, reverse=True)
    _secret_re = re.compile("|".join(re.escape(v) for v in forms))


def redact_values(text: str) -> str:
    """``text`` with every remembered key value replaced by ***."""
    return _secret_re.sub(REDACTED, text) if _secret_re is not None and text else text


def redact(text: Any) -> Any:
    """`text` with every key this process read masked by value (``remember_secret``), and anything key-shaped
    replaced by ***: URL credentials (user:pass@, ?key=...), bearer tokens, known key formats, long random
    tokens. None and non-strings other than dict/list pass as is; dicts and lists are redacted value by value
    (for stored environments)."""
    if isinstance(text, dict):
        return {k: redact(v) for k, v in text.items()}
    if isinstance(text, (list, tuple)):
        return [redact(v) for v in text]
    if not isinstance(text, str) or not text:
        return text
    out = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", redact_values(text))
    out = _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, out)
    out = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, out)
    out = _KEY_FIELD.sub(lambda m: m.group(1) + REDACTED, out)
    out = _KEY_PREFIXED.sub(REDACTED, out)
    out = _KEY_HEX32.sub(REDACTED, out)
    return _KEY_GENERIC.sub(lambda m: REDACTED if _random_like(m.group(0)) else m.group(0), out)


_PASSWORD_ASSIGN = re.compile(r"(?i)(\bpassword\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s'\"]+)")
_NATIVE_SOURCE = re.compile(r"^\S+\.(?:cc|cpp|cxx|c|h|hpp):\d+\s+")


def _strip_native_location(line: str) -> str:
    """'x.cc:204 fl::A::A(std::string, ...) failed to load ...' -> 'failed to load ...'."""
    match = _NATIVE_SOURCE.match(line)
    if not match:
        return line
    rest = line[match.end():]
    start = rest.find("(")
    if start < 0:
        return rest
    depth = 0
    for index in range(start, len(rest)):
        depth += {"(": 1, ")": -1}.get(rest[index], 0)
        if depth == 0:
            return rest[index + 1:].strip() or line
    return line


def one_line(exc: BaseException | str, limit: int | None = 500, *, whole: bool = False) -> str:
    """What the user sees of an error, the one function every page and the CLI use: its first meaningful line
    (``whole``: all its lines joined), without a native library's source location, every credential masked
    (``redact``, and ``password=...`` of any length), cut to ``limit`` characters. An exception with no text
    shows its type's name."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        lines = [type(exc).__name__ if isinstance(exc, BaseException) else ""]
    line = _strip_native_location(" ".join((" ".join(lines) if whole else lines[0]).split()))
    line = redact(_PASSWORD_ASSIGN.sub(lambda m: m.group(1) + REDACTED, line))
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 3, 1)] + "..."
    return line
