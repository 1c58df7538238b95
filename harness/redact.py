"""Credentials in URIs never leave the process: MLflow params and tags, exports, run logs, error messages.

:func:`redact_uri` masks, anywhere in a piece of text,

* the userinfo of a URL: ``scheme://user:secret@host`` -> ``scheme://user:***@host`` and a token-only userinfo
  ``scheme://token@host`` -> ``scheme://***@host``;
* the value of a secret-looking query parameter (``token``, ``access_token``, ``password``, ``key``, ``api_key``,
  ``secret``, ``sig``, ``signature``, ``X-Amz-Signature`` ...): ``?token=abc`` -> ``?token=***``.

Everything else is left byte for byte. :func:`redact_config` applies it to every string of a nested config;
:func:`install_log_redaction` to every log record of the process; :func:`redact_streams` to whatever is written
to ``sys.stdout`` / ``sys.stderr`` (third-party error lines, MLflow's "View run at" line); :func:`redact_exception`
to the messages of an exception and of the exceptions it chains. The real URI is still what talks to the server.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["MASK", "redact_uri", "redact_config", "has_secret", "redact_exception", "install_log_redaction",
           "redact_streams", "redact_files"]

MASK = "***"

#: ``scheme://userinfo@``; the userinfo runs to the last ``@`` before the path (an unescaped ``@`` in a password)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#@'\"<>]*(?:@[^/\s?#@'\"<>]*)*)@")

_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:token|access[_\-]?token|auth|authorization|password|passwd|pwd|pass|secret|key|api[_\-]?key|"
    r"apikey|sig|signature|credential|credentials|session|sas|security[_\-]?token)$", re.IGNORECASE)

#: ``?name=value`` / ``&name=value`` (``;`` too: ``&amp;name=value`` in HTML)
_QUERY = re.compile(r"(?P<pre>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&#;\s'\"<>]*)")


def _userinfo(m: re.Match) -> str:
    info = m.group("userinfo")
    if not info or info == MASK:
        return m.group(0)
    user, sep, password = info.partition(":")
    if sep:
        if password == MASK:
            return m.group(0)
        return f"{m.group('scheme')}{user}:{MASK}@"
    return f"{m.group('scheme')}{MASK}@"


def _query(m: re.Match) -> str:
    value = m.group("value")
    if not value or value == MASK or not _SECRET_NAME.search(m.group("name")):
        return m.group(0)
    return f"{m.group('pre')}{MASK}"


def redact_uri(text: Any) -> Any:
    """``text`` with URL passwords/tokens and secret query values replaced by ``***`` (non-strings unchanged)."""
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _QUERY.sub(_query, text)
    return text


def has_secret(text: Any) -> bool:
    """Whether :func:`redact_uri` would change ``text``."""
    return isinstance(text, str) and redact_uri(text) != text


def redact_config(obj: Any) -> Any:
    """A copy of a nested dict/list config with :func:`redact_uri` applied to every string (keys included)."""
    if isinstance(obj, dict):
        return {redact_uri(k): redact_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_config(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_config(v) for v in obj)
    return redact_uri(obj)


def redact_exception(exc: BaseException) -> BaseException:
    """Redact, in place, the message of ``exc`` and of every exception it chains or wraps; return ``exc``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        try:
            if e.args:
                e.args = tuple(redact_uri(a) for a in e.args)
            for attr in ("message", "msg", "reason", "url"):
                v = getattr(e, attr, None)
                if isinstance(v, str) and has_secret(v):
                    setattr(e, attr, redact_uri(v))
        except (AttributeError, TypeError):  # read-only attributes of some C exceptions
            pass
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            v = getattr(e, attr, None)
            if isinstance(v, BaseException):
                todo.append(v)
    return exc


def install_log_redaction() -> None:
    """Every log record made in this process from now on carries a redacted message (and traceback text).

    A record factory, not a handler filter: it covers every logger and every handler, including the file handler
    Hydra adds for ``<run dir>/<job>.log``. Idempotent.
    """
    old = logging.getLogRecordFactory()
    if getattr(old, "_harness_redacting", False):
        return

    def factory(*args, **kwargs):
        record = old(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        red = redact_uri(msg)
        if red != msg:
            record.msg, record.args = red, None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if has_secret(text):
                record.exc_text = redact_uri(text)
        return record

    factory._harness_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class _RedactingStream:
    """A text stream that redacts what is written through it; everything else is the wrapped stream's."""

    _harness_redacting = True

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, s):
        self._stream.write(redact_uri(s) if isinstance(s, str) else s)
        return len(s)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def redact_streams() -> None:
    """Route ``sys.stdout`` / ``sys.stderr`` through :func:`redact_uri` (what libraries print: errors, URLs)."""
    for name in ("stdout", "stderr"):
        s = getattr(sys, name)
        if s is not None and not getattr(s, "_harness_redacting", False):
            setattr(sys, name, _RedactingStream(s))


def redact_files(folder: Path, pattern: str = "*.yaml") -> list[Path]:
    """Redact text files in ``folder`` in place (Hydra's ``.hydra/*.yaml``: a URI given as an override); return
    the files that changed."""
    changed = []
    folder = Path(folder)
    if not folder.is_dir():
        return changed
    for f in sorted(folder.glob(pattern)):
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        red = redact_uri(text)
        if red != text:
            f.write_text(red)
            changed.append(f)
    return changed
