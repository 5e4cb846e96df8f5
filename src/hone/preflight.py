"""Checks before work: what a stage needs is there before its first item, or the user reads one line saying why.

A missing API key, a server that does not answer or a model file that cannot be read would otherwise surface
item by item, as a run full of `error` records, after the stage had already started.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from hone.errors import HoneError


def require_env(names: tuple[str, ...], what: str) -> None:
    """One of `names` must be set (to anything non-empty); the value itself is never read here or shown."""
    if not any(os.environ.get(n) for n in names):
        raise HoneError(f"{what} needs {' or '.join(names)} in the environment (keys are read from there only); "
                        "set it and run again")


def server_answers(base_url: str, timeout: float = 10.0) -> list[str]:
    """GET `<base_url>/models` of an OpenAI-compatible server; return the model ids it serves."""
    url = base_url.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"}
                                     if os.environ.get("OPENAI_API_KEY") else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise HoneError(f"{url}: the server answered HTTP {e.code}; is this an OpenAI-compatible /v1 URL?") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise HoneError(f"{base_url}: no server answers ({reason}); start it or fix the URL") from None
    except json.JSONDecodeError:
        raise HoneError(f"{url}: the answer is not JSON; is this an OpenAI-compatible /v1 URL?") from None
    return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]


def weights_open(files: list[Path]) -> None:
    """Every safetensors file's header parses and its tensors lie inside the file (a truncated copy does not)."""
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="pt") as handle:
                handle.keys()
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for every bad file
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise HoneError(f"{f}: the weights cannot be read ({reason}); the file is truncated, damaged or not "
                            "safetensors") from None
