"""The one Hub helper: push a folder to a Hub repo, or copy it to a local target (tests, air-gapped machines)."""

from __future__ import annotations

import logging
import os
import shutil

logger = logging.getLogger(__name__)


def is_local_target(target: str) -> bool:
    """A push target given as a local folder: an absolute path, `./...`, `../...` or `file://...`."""
    return target.startswith(("/", "./", "../", "file://", "~")) or os.path.isdir(target)


def push_folder(folder: str, target: str, repo_type: str = "model", private: bool = False) -> str:
    """Copy `folder` to a local target folder, or upload it to the Hub repo `target` (created if needed)."""
    if is_local_target(target):
        destination = os.path.expanduser(target.removeprefix("file://"))
        shutil.copytree(folder, destination, dirs_exist_ok=True)
        logger.info(f"Copied {folder} to {destination}")
        return destination
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(target, repo_type=repo_type, private=private, exist_ok=True).repo_id
    upload_folder(repo_id=repo_id, folder_path=folder, repo_type=repo_type, commit_message=f"Upload {repo_type}")
    logger.info(f"Pushed {folder} to https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}")
    return repo_id
