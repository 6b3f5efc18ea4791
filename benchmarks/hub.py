"""The published dataset files from the Hugging Face hub (optional: `pip install 'rbench[hub]'`).

`huggingface_hub` keeps its own download cache, so a file is fetched once per machine; offline, a
file already in that cache is used. Anything else (no client installed, no network) is a one-line
`UserError` telling the user to pass a local copy with `--from`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.errors import UserError


def fetch(repo: str, filename: str, revision: str | None, task: str) -> Path:
    hint = (
        f"download {filename} of https://huggingface.co/datasets/{repo} on a machine that is "
        f"online and pass it: rbench data build {task} --from FILE_OR_DIR"
    )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError(
            f"{task}: the Hugging Face hub client is not installed (pip install huggingface_hub); or {hint}"
        ) from None
    try:
        return Path(
            hf_hub_download(
                repo_id=repo, filename=filename, repo_type="dataset", revision=revision, etag_timeout=10
            )
        )
    except Exception as e:  # offline, missing file, auth: all end the same way for the user
        raise UserError(
            f"{task}: cannot fetch {repo}/{filename} from the Hugging Face hub "
            f"(offline? {type(e).__name__}); {hint}"
        ) from None
