"""The gradients a rendered view receives: SDS, VSD and the Uni-Instruct f-divergence family.

The formulas are pure functions of tensors (``divergences``, ``losses``); ``distill.guidance_loss``
runs the teacher and the fake score on a batch and applies one of them; ``config.GuidanceConfig``
holds every setting.

    >>> import torch
    >>> from uni3d.guidance import f_weights
    >>> h, H_prime, r_H_second = f_weights("js", torch.tensor([1.0]))
"""

from uni3d.guidance.config import METHODS, GuidanceConfig
from uni3d.guidance.divergences import DIVERGENCE_TITLES, DIVERGENCES, f_generator, f_weights
from uni3d.guidance.losses import UniInstructTerms, sds_grad, surrogate_loss, uni_instruct_loss, vsd_grad

__all__ = [
    "DIVERGENCES", "DIVERGENCE_TITLES", "METHODS", "GuidanceConfig", "UniInstructTerms", "f_generator", "f_weights",
    "sds_grad", "surrogate_loss", "uni_instruct_loss", "vsd_grad",
]
