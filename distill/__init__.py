"""distill: Decoder-based Sense Knowledge Distillation on top of a sensekit store (docs/method.md section 2).

Installed as `sensekit.distill` (the link sensekit/distill): import it by that name. It imports the
rest of sensekit, which never imports it (except the command package, sensekit.cli). Heavy imports
(torch, transformers, accelerate) happen in the submodules, so `import sensekit.distill` stays light.
"""

from __future__ import annotations

from .config import DistillConfig

__all__ = ["DistillConfig", "train"]


def train(cfg: DistillConfig, **kwargs):
    """Run a distillation (see distill.train.train)."""
    from .train import train as _train

    return _train(cfg, **kwargs)
