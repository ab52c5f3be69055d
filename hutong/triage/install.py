"""Which model a node uses, and installing an operator's own.

The node uses, in order: the file named by the ``triage_model`` setting; the model installed in
the data folder by ``hutong triage train`` (``<data_dir>/triage/model.npz``); the shipped default.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hutong.triage.model import TriageModel
from hutong.triage.service import SHIPPED_MODEL, Triager


def installed_path(settings) -> Path:
    return Path(settings.data_dir) / "triage" / "model.npz"


def model_path(settings) -> Path:
    """The model file this node uses."""
    configured = getattr(settings, "triage_model", "") or ""
    if configured:
        return Path(configured)
    installed = installed_path(settings)
    return installed if installed.exists() else SHIPPED_MODEL


def triager_for(settings) -> Triager:
    """The triage service with this node's model."""
    return Triager(TriageModel.load(model_path(settings)))


def install(model: TriageModel, settings) -> Path:
    """Write ``model`` as this node's installed model (atomically: a running node never reads half a file)."""
    target = installed_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npz.tmp")
    os.close(fd)
    try:
        model.save(Path(tmp))
        TriageModel.load(Path(tmp))  # refuse to install a file that does not read back
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
