"""nerfstudio's Trainer for the uni3d methods: it steps the optimizers only once the fake score's gradient, computed
on a second thread beside the scene's backward (``Uni3DModel.get_loss_dict``), is in, and logs that gradient's
losses with the others."""

from __future__ import annotations

import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.engine.trainer import Trainer


class JoinedOptimizers(Optimizers):
    """nerfstudio's Optimizers, each step preceded by the model's ``join_fake``; ``joined`` holds the losses it
    returned."""

    def __init__(self, config: dict, param_groups: dict, model) -> None:
        super().__init__(config, param_groups)
        self.model = model
        self.joined: dict[str, torch.Tensor] = {}

    def _join(self) -> None:
        self.joined = self.model.join_fake()

    def optimizer_step_all(self) -> None:
        self._join()
        super().optimizer_step_all()

    def optimizer_scaler_step_all(self, grad_scaler) -> None:
        self._join()
        super().optimizer_scaler_step_all(grad_scaler)

    def optimizer_scaler_step_some(self, grad_scaler, param_groups: list[str]) -> None:
        self._join()
        super().optimizer_scaler_step_some(grad_scaler, param_groups)


class Uni3DTrainer(Trainer):
    """nerfstudio's Trainer with ``JoinedOptimizers``; a step's loss dict and total hold the fake score's losses
    whichever thread computed them."""

    def setup_without_viewer(self) -> None:
        """What ``setup`` makes for training, without the viewer, the writers and a checkpoint to load: the pipeline,
        the optimizers and the callbacks (tests and benchmarks step it with ``train_iteration``)."""
        self.pipeline = self.config.pipeline.setup(device=self.device, test_mode="val", grad_scaler=self.grad_scaler)
        self.optimizers = self.setup_optimizers()
        attrs = TrainingCallbackAttributes(optimizers=self.optimizers, grad_scaler=self.grad_scaler,
                                           pipeline=self.pipeline, trainer=None)
        self.callbacks = self.pipeline.get_training_callbacks(attrs)

    def setup_optimizers(self) -> Optimizers:
        return JoinedOptimizers(self.config.optimizers.copy(), self.pipeline.get_param_groups(), self.pipeline.model)

    def train_iteration(self, step: int):
        loss, losses, metrics = super().train_iteration(step)
        joined, self.optimizers.joined = self.optimizers.joined, {}
        joined = {k: v.detach() for k, v in joined.items()}
        return loss + sum(joined.values()), {**losses, **joined}, metrics
