"""Experiment tracking: where training records go besides ``metrics.jsonl``.

``train.log`` lists the destinations: ``jsonl`` (the run folder's ``metrics.jsonl``, always
written, so naming it changes nothing), ``tensorboard`` (event files in ``<run>/tensorboard``,
read with ``tensorboard --logdir runs``) and ``wandb`` (Weights & Biases; offline unless
``WANDB_MODE`` says otherwise, so a machine without network or account still trains, and
``wandb sync <run>/wandb/offline-run-*`` uploads later). Each is an optional extra
(``pip install "foresight[tensorboard]"``, ``"foresight[wandb]"``), imported only when named.

Every tracker receives the same records as ``metrics.jsonl`` (scalars as ``<split>/<key>``,
at the record's step) and the validation sample strips (true rows, then imagined ones) as
images. A resumed run continues the same curves: TensorBoard purges the steps after the
checkpoint (they are run again), and W&B resumes the run whose id the folder recorded.
"""

from __future__ import annotations

import importlib.util
import math
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from foresight.errors import ConfigError
from foresight.registry import Registry

#: The destination that is always written (``metrics.jsonl``), allowed in ``train.log``.
JSONL = "jsonl"


class Tracker(ABC):
    """One destination of training records, opened on rank 0 once the run folder is ready.

    Args:
        out: The run folder.
        config: The run's resolved model config, as a plain dict.
        resume_step: The checkpoint's step when resuming (records after it are run again),
            else None.
    """

    #: The package the tracker imports, and the extra that installs it.
    package: ClassVar[str]

    @classmethod
    def check(cls, name: str) -> None:
        """Refuse (one line) before any work when the tracker's package is missing."""
        if importlib.util.find_spec(cls.package) is None:
            raise ConfigError(
                f"train.log names {name!r}, which needs the {cls.package} package: "
                f'pip install "foresight[{name}]" (or drop it from train.log)'
            )

    @abstractmethod
    def __init__(self, out: Path, config: dict[str, Any], resume_step: int | None) -> None: ...

    @abstractmethod
    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` (``<split>/<key>`` -> number) at ``step``."""

    @abstractmethod
    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """Log one ``(H, W, 3)`` uint8 image at ``step``."""

    @abstractmethod
    def close(self) -> None:
        """Flush and close (called once, also after an error or an interruption)."""

    def log(self, record: dict[str, Any]) -> None:
        """Log a ``metrics.jsonl`` record: its finite numbers, under its split."""
        split = record.get("split", "train")
        values = {
            f"{split}/{k}": float(v)
            for k, v in record.items()
            if k not in ("step", "split")
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        }
        if values:
            self.scalars(int(record["step"]), values)


#: Trackers by the name ``train.log`` gives (``jsonl`` is always on and not listed).
TRACKERS = Registry[type[Tracker]]("tracker")


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``<run>/tensorboard`` (``torch.utils.tensorboard``)."""

    package = "tensorboard"

    def __init__(self, out: Path, config: dict[str, Any], resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events at and after it that an earlier attempt wrote: the steps
        # after the checkpoint are trained again, and their curves must not appear twice.
        self.writer = SummaryWriter(
            str(out / "tensorboard"), purge_step=None if resume_step is None else resume_step + 1
        )
        if resume_step is None:
            self.writer.add_text("config", f"```\n{_as_yaml(config)}\n```", 0)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """See :meth:`Tracker.scalars`."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """See :meth:`Tracker.image`."""
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        """See :meth:`Tracker.close`."""
        self.writer.close()


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """A Weights & Biases run, its files in ``<run>/wandb``.

    Offline unless ``WANDB_MODE`` is set; project ``foresight`` unless ``WANDB_PROJECT`` is.
    """

    package = "wandb"
    #: The run folder's record of its W&B run id, so a resumed run continues that run.
    ID_FILE = "wandb_id"

    def __init__(self, out: Path, config: dict[str, Any], resume_step: int | None) -> None:
        import wandb

        from foresight.io import atomic_write_text

        id_file = out / self.ID_FILE
        resuming = resume_step is not None and id_file.is_file()
        run_id = id_file.read_text().strip() if resuming else ""
        if not run_id:
            run_id = uuid.uuid4().hex[:12]  # drawn from no seeded stream
            atomic_write_text(id_file, run_id + "\n")
        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "foresight"),
            name=out.name,
            dir=str(out),
            id=run_id,
            resume="allow",
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
            config=config,
            settings=wandb.Settings(silent=True),
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """See :meth:`Tracker.scalars`."""
        self.run.log(values, step=step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """See :meth:`Tracker.image`."""
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def close(self) -> None:
        """See :meth:`Tracker.close`."""
        self.run.finish()


def check_trackers(names: Sequence[str]) -> list[type[Tracker]]:
    """The tracker classes ``train.log`` names, after checking each can be used.

    Raises:
        ConfigError: An unknown name, or a tracker whose package is not installed.
    """
    classes = []
    for name in dict.fromkeys(names):  # a name given twice opens one tracker
        if name == JSONL:
            continue
        cls = TRACKERS.lookup(name, "train.log")
        cls.check(name)
        classes.append(cls)
    return classes


def _as_yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False).strip()
