"""``WeightAverage``: an exponential moving average of a model's weights during training (``onboard train
--ema_decay``), the copy that is saved as the policy.

The weights an optimizer leaves at any one step carry the noise of the last few batches; their running average over
the last ~1/(1 - decay) steps is smoother and usually acts better (diffusion policies and image models are trained
this way). The average is updated after every optimizer step, with the decay ramped up from 0 over the first steps
(``min(decay, (1 + n) / (10 + n))`` after n updates) so that it does not remember the random initial weights. Buffers
(none in the VLA today) are copied, not averaged. The average lives on the model's device; one fused ``lerp`` per step.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The running average of ``model``'s parameters; ``update(model)`` after each step, ``module`` to save or run."""

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must be in (0, 1), e.g. 0.999; got {decay}")
        self.decay = float(decay)
        self.updates = int(updates)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def rate(self) -> float:
        """The weight of the newest weights in the next update: 1 - the (ramped) decay."""
        return 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        mine = list(self.module.parameters())
        theirs = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(mine, theirs, self.rate())
        for b_mine, b_theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            b_mine.copy_(b_theirs)
        self.updates += 1
