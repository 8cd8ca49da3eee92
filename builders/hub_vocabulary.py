"""The Hugging Face Hub's controlled card vocabularies: license identifiers, size and task categories."""
from __future__ import annotations

# huggingface/hub-docs docs/hub/repositories-licenses.md (the list the Hub validates `license:` against), plus the
# Llama 3.x / 4 identifiers added since. `other` needs `license_name` (and a LICENSE file in the repo).
LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1
lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl
lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())

# huggingface_hub.DatasetCardData's documented `size_categories` values, by exclusive upper bound of rows
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                   (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"))
TASK_CATEGORIES = ("text-generation", "question-answering")


def size_category(rows: int) -> str:
    """The Hub's size category for a row count (n>1T beyond the last bound)."""
    for bound, label in SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>1T"


def license_problem(license: str) -> str | None:
    """Why a `license:` value is not one the Hub accepts (None when it is), with the nearest identifiers."""
    if license in LICENSES:
        return None
    import difflib

    close = difflib.get_close_matches(license.lower().replace(" ", "-"), sorted(LICENSES), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{license!r} is not a Hub license identifier{hint}; see https://huggingface.co/docs/hub/repositories-licenses"
