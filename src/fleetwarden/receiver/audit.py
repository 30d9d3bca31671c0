"""What goes into an audit row, bounded and escaped. Pure functions.

Every text value a client sent (labels, fingerprint, reasons that quote a value) is escaped, so a row can hold
no control character, escape sequence or lone surrogate, and cut to a documented length, so a row stays small
whatever arrived. docs/receiver.md gives the lengths.
"""

from __future__ import annotations

import json
import re

FIELD_CHARS = 256  # host, alertname, fingerprint, startsAt, status, remote
REASON_CHARS = 512  # a refusal's reason, which may quote the offending value
LABELS_CHARS = 4096  # the labels as JSON

# C0 and C1 control characters, DEL, and lone surrogates (which no encoder accepts).
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def escape(text: str) -> str:
    """Control characters and lone surrogates as \\xNN / \\uNNNN; everything else as it is."""
    return _UNSAFE_RE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                          else f"\\u{ord(m.group()):04x}", text)


def clip(text: str | None, limit: int = FIELD_CHARS) -> str | None:
    """Escaped, and cut to `limit` characters with a marker saying how much went."""
    if text is None:
        return None
    text = escape(str(text))
    if len(text) <= limit:
        return text
    marker = f"...[{len(text) - limit} more]"
    return text[:limit - len(marker)] + marker


def labels_json(labels: dict) -> str:
    """The labels as JSON (ASCII only, so escaped), within LABELS_CHARS: labels beyond it are dropped and
    counted under the key "..."."""
    text = json.dumps(labels, sort_keys=True, ensure_ascii=True)
    if len(text) <= LABELS_CHARS:
        return text
    kept: dict = {}
    names = sorted(labels)
    for index, name in enumerate(names):
        trial = {**kept, name: labels[name], "...": f"{len(names) - index - 1} labels cut"}
        if len(json.dumps(trial, sort_keys=True, ensure_ascii=True)) > LABELS_CHARS:
            kept["..."] = f"{len(names) - index} labels cut"
            return json.dumps(kept, sort_keys=True, ensure_ascii=True)
        kept[name] = labels[name]
    return json.dumps(kept, sort_keys=True, ensure_ascii=True)
