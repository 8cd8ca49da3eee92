"""Hub model ids for the local backends: `org/name[@revision]` resolved to a pinned snapshot directory."""
from __future__ import annotations

import re
from pathlib import Path

from mathforge.errors import InputError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")
PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "*.jinja"]  # no .bin / .pt
_RESOLVED: dict[tuple[str, str | None], tuple[str, str]] = {}


def is_hub_id(model: str) -> bool:
    """`org/name` or `org/name@revision` that is not an existing local path."""
    return not Path(model).exists() and HUB_ID.fullmatch(model) is not None


def resolve(model: str, revision: str | None = None) -> tuple[str, str | None]:
    """(local directory, the commit it was resolved to): a local directory as it is (commit None); a Hub id through
    huggingface_hub's snapshot_download (the cache; HF_HUB_OFFLINE honoured), pinned to the commit it resolved to
    so the provenance names exactly the weights that ran. Weights only as safetensors: no pickle is loaded."""
    if not is_hub_id(model):
        return model, None
    repo, _, pinned = model.partition("@")
    rev = pinned or revision
    if (repo, rev) in _RESOLVED:
        return _RESOLVED[(repo, rev)]
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = snapshot_download(repo, revision=rev, allow_patterns=PATTERNS)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise InputError(f"Hub model {repo}{'@' + rev if rev else ''} is not in the local cache and the Hub cannot "
                         "be reached (HF_HUB_OFFLINE is set, or no network): download it once where the Hub is "
                         f"reachable (`hf download {repo}`), or give a local model directory") from None
    except GatedRepoError:
        raise InputError(f"Hub model {repo} is gated: accept its terms and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise InputError(f"{repo}: not a local model directory, and no such model on the Hub (or no access)") \
            from None
    except RevisionNotFoundError:
        raise InputError(f"no revision {rev!r} in Hub model {repo}") from None
    if not (Path(path) / "config.json").exists():
        raise InputError(f"Hub model {repo} has no config.json: not a transformers model")
    _RESOLVED[(repo, rev)] = (path, Path(path).name)  # snapshots/<commit>
    return _RESOLVED[(repo, rev)]
