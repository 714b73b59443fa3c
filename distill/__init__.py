"""distill: Decoder-based Sense Knowledge Distillation on top of a sensekit store (docs/method.md section 2).

`distill` imports `sensekit`, never the reverse. Heavy imports (torch, transformers,
accelerate) happen in the submodules, so `import distill` stays light.
"""

from __future__ import annotations

from .config import DistillConfig

__all__ = ["DistillConfig", "train"]


def train(cfg: DistillConfig, **kwargs):
    """Run a distillation (see distill.train.train)."""
    from .train import train as _train

    return _train(cfg, **kwargs)
