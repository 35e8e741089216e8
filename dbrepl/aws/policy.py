"""IAM-style policy documents compared as parsed JSON, not as text."""

from __future__ import annotations

import json
from typing import Any


def normalise_policy(doc: Any) -> Any:
    """Compare policies as parsed JSON with single values and lists treated alike, sorted."""
    if isinstance(doc, str):
        # A document given as JSON text; a string value inside one (an account id, "true") stays text.
        if not doc.lstrip().startswith(("{", "[")):
            return doc
        try:
            doc = json.loads(doc)
        except ValueError:
            return doc
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            v = normalise_policy(v)
            if k in ("Action", "Resource", "NotAction", "NotResource") and not isinstance(v, list):
                v = [v]
            if isinstance(v, list) and k in ("Action", "Resource", "Service", "AWS"):
                v = sorted(v, key=str)
            out[k] = v
        return out
    if isinstance(doc, list):
        return [normalise_policy(x) for x in doc]
    return doc
