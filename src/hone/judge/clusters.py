"""Failure clusters: what kind of thing the model gets wrong, and how, from the failed items' own text.

Each failed item is the text of its prompt, the model's answer and the judge's reason; TF-IDF over words and
operator symbols (numbers are left out: they make every arithmetic item unique and say nothing of the kind of
error), then k-means with a fixed seed, so the same failures always give the same clusters. Each cluster is
labelled with the terms that weigh more in its centre than across all failures, and with the items nearest
to it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.errors import HoneError

CLUSTERS_FILE = "failure_clusters.json"
TOKENS = r"(?u)[^\W\d_][^\W\d]+|[+\-*/=<>%^]"  # words of two letters or more, and operators
EXAMPLES = 3


def _text(row: dict[str, Any]) -> str:
    return " \n".join(str(row.get(k) or "") for k in ("prompt", "output", "reason"))


def _short(text: Any, n: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def cluster_failures(rows: list[dict[str, Any]], k: int, seed: int = 0) -> dict[str, Any]:
    """Group failure rows (dicts with prompt, output, reason, id, category) into at most `k` clusters."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    if k < 1:
        raise HoneError(f"--cluster {k}: the number of clusters must be at least 1")
    out: dict[str, Any] = {"method": "tf-idf (words, operators) + k-means", "k": k, "seed": seed,
                           "items": len(rows), "clusters": []}
    if not rows:
        return out
    texts = [_text(r) for r in rows]
    try:
        vectors = TfidfVectorizer(token_pattern=TOKENS, sublinear_tf=True, lowercase=True, stop_words="english").fit(texts)
        x = vectors.transform(texts)
    except ValueError:  # no word at all in any item: one group
        x = None
    distinct = len({tuple(row.indices) + tuple(np.round(row.data, 6)) for row in x}) if x is not None else 1
    n = max(1, min(k, distinct))
    if x is None or n == 1:
        labels, model, terms = np.zeros(len(rows), dtype=int), None, None
    else:
        model = KMeans(n_clusters=n, n_init=10, random_state=seed).fit(x)
        labels, terms = model.labels_, vectors.get_feature_names_out()
    out["k_used"] = n
    for c in range(n):
        members = [i for i in range(len(rows)) if labels[i] == c]
        if not members:
            continue
        if model is not None:
            centre = model.cluster_centers_[c]
            lift = centre - np.asarray(x.mean(axis=0)).ravel()  # what sets this cluster apart from the rest
            top = [str(terms[j]) for j in np.argsort(-lift, kind="stable")[:6] if centre[j] > 0 and lift[j] > 0]
            dist = model.transform(x[members])[:, c]
            nearest = [members[j] for j in np.argsort(dist, kind="stable")[:EXAMPLES]]
        else:
            top, nearest = [], members[:EXAMPLES]
        out["clusters"].append({
            "size": len(members), "share": round(len(members) / len(rows), 4), "top_terms": top,
            "categories": dict(Counter(str(rows[i].get("category") or "?") for i in members).most_common()),
            "examples": [{"id": rows[i].get("id"), "prompt": _short(rows[i].get("prompt")),
                          "output": _short(rows[i].get("output")), "reason": _short(rows[i].get("reason"))}
                         for i in nearest],
            "ids": [rows[i].get("id") for i in members],
        })
    out["clusters"].sort(key=lambda c: (-c["size"], c["top_terms"]))
    for i, c in enumerate(out["clusters"]):
        c["cluster"] = i
    return out


def read_failure_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a failures file (`hone failures` JSONL or CSV, or a benchmark's failures.jsonl)."""
    if str(path).lower().endswith(".csv"):
        import csv

        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise HoneError(f"{path}:{n}: not JSON ({e.msg})") from None
    return rows


def write_clusters(clusters: dict[str, Any], out: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    body = {**clusters, "source": str(source) if source else None}
    write_text_atomic(Path(out), json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    return Path(out)


def read_clusters(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The failure clusters `write_clusters` left in a run directory (None: none written, or being replaced)."""
    try:
        return json.loads((Path(run_dir) / CLUSTERS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
