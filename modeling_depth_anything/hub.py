"""The one Hub helper: push a folder to a Hub repo, or copy it to a local target (tests, air-gapped machines)."""

from __future__ import annotations

import logging
import os
import shutil

logger = logging.getLogger(__name__)


def is_local_target(target: str) -> bool:
    """A push target given as a local folder: an absolute path, `./...`, `../...` or `file://...`."""
    return target.startswith(("/", "./", "../", "file://", "~")) or os.path.isdir(target)


def push_folder(
    folder: str,
    target: str,
    repo_type: str = "model",
    private: bool = False,
    allow_patterns: list[str] | None = None,
) -> str:
    """Copy `folder` to a local target folder, or upload it to the Hub repo `target` (created if needed).

    `allow_patterns` (glob patterns of relative paths, as `huggingface_hub.upload_folder` takes them) limits what goes,
    the same way for both targets; None = the whole folder.
    """
    if is_local_target(target):
        from huggingface_hub.utils import filter_repo_objects

        destination = os.path.expanduser(target.removeprefix("file://"))
        if allow_patterns is None:
            shutil.copytree(folder, destination, dirs_exist_ok=True)
        else:
            files = [
                os.path.relpath(os.path.join(root, name), folder)
                for root, _, names in os.walk(folder)
                for name in names
            ]
            for relative in filter_repo_objects(files, allow_patterns=allow_patterns):
                os.makedirs(os.path.dirname(os.path.join(destination, relative)), exist_ok=True)
                if os.path.abspath(os.path.join(folder, relative)) != os.path.abspath(
                    os.path.join(destination, relative)
                ):
                    shutil.copy2(os.path.join(folder, relative), os.path.join(destination, relative))
        logger.info(f"Copied {folder} to {destination}")
        return destination
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(target, repo_type=repo_type, private=private, exist_ok=True).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        commit_message=f"Upload {repo_type}",
        allow_patterns=allow_patterns,
    )
    logger.info(f"Pushed {folder} to https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}")
    return repo_id
