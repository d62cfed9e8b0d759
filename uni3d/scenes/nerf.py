"""A NeRF for score distillation: multi-resolution dense grids + a small MLP, in pure torch.

Density comes from summed dense grids plus a centred "blob" bias (Magic3D-style) so the scene
starts as a soft ball; albedo from multi-resolution feature grids and a small MLP. An occupancy
grid skips empty space. On CUDA with tinycudann installed, a hash-grid encoding replaces the
feature grids (``uni3d.scenes.encodings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput, Scene
from uni3d.scenes.encodings import make_encoding, trilinear


@dataclass
class NeRFConfig:
    """The NeRF scene."""

    bound: float = 0.9
    """Half-size of the scene cube (world units); rays are marched inside the sphere of this radius."""
    density_levels: tuple[int, ...] = (24, 48)
    """Resolutions of the summed dense density grids."""
    feature_levels: tuple[int, ...] = (12, 24, 48)
    """Resolutions of the colour feature grids (4 features each)."""
    hidden: int = 32
    """Width of the colour MLP."""
    samples_per_ray: int = 64
    """Stratified samples per ray (before empty-space skipping)."""
    colour_min_weight: float = 1e-4
    """Samples whose compositing weight is below this get no colour (nor normal) evaluation: each adds at
    most this much to its pixel. 0 evaluates every sample in occupied space."""
    blob_density: float = 5.0
    """Peak of the initial density blob at the centre (log-density units)."""
    blob_radius: float = 0.5
    """Radius of the density blob (world units)."""
    shading: Literal["albedo", "lambertian"] = "albedo"
    """albedo: colour as is; lambertian: albedo times ambient + diffuse from a learned light direction
    (learned from the teacher, never given the world's light)."""
    background: Literal["white", "learned"] = "white"
    """white (Shapes World) or a learned constant colour (Stable Diffusion)."""
    lr_grid: float = 0.05
    """Learning rate of the grids."""
    lr_mlp: float = 0.005
    """Learning rate of the MLP, light and background."""
    occupancy_resolution: int = 32
    """Resolution of the occupancy grid used to skip empty space."""
    occupancy_every: int = 16
    """Steps between occupancy-grid updates."""
    occupancy_threshold: float = 0.002
    """Cell opacity (over one sample step) below which a cell counts as empty."""
    hash_grid: Literal["auto", "off"] = "auto"
    """auto: a tinycudann hash grid when on CUDA with tinycudann installed; off: dense grids always."""
    regularizers: dict[str, float] = field(default_factory=lambda: {"loss_opacity": 0.0, "loss_entropy": 0.0, "loss_orient": 0.0})
    """Regulariser weights (loss_opacity: mean opacity, loss_entropy: binary entropy of opacity,
    loss_orient: normals facing away from the camera)."""


def transmittance(tau: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """exp(-(optical depth before each sample on its ray)) of packed samples: ``tau`` (K,) each sample's optical
    depth, ``ray`` (K,) its ray, samples grouped by ray and in order along it. One cumulative sum over all rays,
    in float64 so that subtracting the sum up to a ray's first sample loses nothing."""
    before = torch.cumsum(tau.double(), 0) - tau.double()
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ray[1:] != ray[:-1]
    return torch.exp(-(before - before[first][torch.cumsum(first, 0) - 1])).to(tau.dtype)


class NeRFScene(Scene):
    """Radiance field with view-independent albedo and optional diffuse shading."""

    def __init__(self, config: NeRFConfig = NeRFConfig(), seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        self.config = c = config
        g = torch.Generator().manual_seed(seed)
        self.density_grids = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1, r, r, r)) for r in c.density_levels]
        )
        self.encoding = make_encoding(c.feature_levels, c.bound, c.hash_grid, torch.device(device), g)
        self.mlp = nn.Sequential(nn.Linear(self.encoding.out_dim, c.hidden), nn.SiLU(), nn.Linear(c.hidden, 3))
        self.light = nn.Parameter(torch.tensor([0.0, 1.0, 0.0]))  # learned direction towards the light
        self.ambient_logit = nn.Parameter(torch.tensor(-0.5))
        self.background_logit = nn.Parameter(torch.full((3,), 4.0))
        r = c.occupancy_resolution
        self.register_buffer("occupancy", torch.ones(r, r, r, dtype=torch.bool))
        self.step_size = 2 * c.bound / c.samples_per_ray

    # --- fields -----------------------------------------------------------------------------
    def density(self, xyz: torch.Tensor) -> torch.Tensor:
        """Volume density sigma >= 0 at world points (N, 3) -> (N,)."""
        coords = xyz / self.config.bound
        raw = sum(trilinear(grid, coords)[:, 0] for grid in self.density_grids)
        blob = self.config.blob_density * (1 - xyz.norm(dim=-1) / self.config.blob_radius)
        return torch.exp((raw + blob).clamp(max=12.0))

    def albedo(self, xyz: torch.Tensor) -> torch.Tensor:
        """Albedo in [0, 1] at world points (N, 3) -> (N, 3)."""
        return torch.sigmoid(self.mlp(self.encoding(xyz)))

    def normals(self, xyz: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
        """Outward unit normals -grad(sigma)/|grad(sigma)| by central differences of log density."""
        offsets = torch.eye(3, device=xyz.device) * eps
        logd = lambda p: torch.log(self.density(p) + 1e-6)  # noqa: E731
        grad = torch.stack([logd(xyz + o) - logd(xyz - o) for o in offsets], dim=-1)
        return -grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    @property
    def background(self) -> torch.Tensor:
        if self.config.background == "white":
            return torch.ones(3, device=self.background_logit.device)
        return torch.sigmoid(self.background_logit)

    # --- rendering --------------------------------------------------------------------------
    def render(self, cams: Cameras, resolution: int, shade: bool | None = None, jitter: bool | None = None) -> RenderOutput:
        """Volume-render each camera; ``shade`` overrides the config's shading choice."""
        origins, dirs = cams.rays(resolution)
        out = self.render_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3), shade, jitter)
        b, r = len(cams), resolution
        img = lambda x: x.view(b, r, r, -1).permute(0, 3, 1, 2)  # noqa: E731
        normals = out.pop("normals")
        return RenderOutput(rgb=img(out.pop("rgb")), alpha=img(out.pop("alpha")), depth=img(out.pop("depth")),
                            normals=img(normals) if normals is not None else None, aux=out)

    def render_rays(self, o: torch.Tensor, d: torch.Tensor, shade: bool | None = None,
                    jitter: bool | None = None) -> dict[str, torch.Tensor]:
        """Volume-render rays (origins, unit directions: (N, 3) each, world units).

        Only the samples in occupied cells are evaluated and composited, packed ray after ray (an empty cell's
        zero density changes no pixel). Returns per-ray ``rgb`` (N, 3), ``alpha`` (N, 1), ``depth`` (N, 1),
        ``normals`` (N, 3) or None, and per packed sample its compositing ``weights`` (K,) (plus ``dirs`` and
        ``normals_per_sample`` (K, 3) when shaded) for the regularisers.
        """
        c = self.config
        shade = (c.shading == "lambertian") if shade is None else shade
        jitter = self.training if jitter is None else jitter
        dev = self.device
        o, d = o.to(dev), d.to(dev)
        n_rays, n_s = o.shape[0], c.samples_per_ray
        # Stratified samples between near and far of the bounding sphere.
        bo = (o * d).sum(-1)
        disc = (bo * bo - (o * o).sum(-1) + c.bound**2).clamp(min=0).sqrt()
        near, far = (-bo - disc).clamp(min=0), -bo + disc
        u = torch.arange(n_s, device=dev).float().expand(n_rays, n_s)
        u = u + (torch.rand(n_rays, n_s, device=dev) if jitter else 0.5)
        t = near[:, None] + (far - near)[:, None] * u / n_s
        pts = o[:, None] + t[..., None] * d[:, None]
        # Pack the samples in occupied cells: sorted, so grouped by ray and in order along each.
        keep = self._occupied(pts.view(-1, 3)) & (disc > 0)[:, None].expand(-1, n_s).reshape(-1)
        idx = keep.nonzero().squeeze(-1)
        ray, t, pts = idx // n_s, t.reshape(-1)[idx], pts.view(-1, 3)[idx]
        tau = self.density(pts) * ((far - near) / n_s)[ray] if idx.numel() else t.new_zeros(0)  # optical depth
        w = -torch.expm1(-tau) * transmittance(tau, ray)
        per_ray = lambda v: torch.zeros(n_rays, *v.shape[1:], device=dev).index_add(0, ray, v)  # noqa: E731
        acc = per_ray(w)[:, None]
        # Colour (and normals) only where the sample is seen: weight above colour_min_weight.
        seen = (w.detach() > c.colour_min_weight).nonzero().squeeze(-1) if c.colour_min_weight > 0 else None
        ws, ps, rs = (w, pts, ray) if seen is None else (w[seen], pts[seen], ray[seen])
        rgb = torch.zeros(n_rays, 3, device=dev)
        normal = torch.zeros(len(w), 3, device=dev)
        if len(ps):
            alb = self.albedo(ps)
            if shade:
                n = self.normals(ps)
                normal = n if seen is None else normal.index_put((seen,), n)
                alb = self.shade(alb, n)
            rgb = rgb.index_add(0, rs, ws[:, None] * alb)
        out = {
            "rgb": rgb + (1 - acc) * self.background,
            "alpha": acc,
            "depth": per_ray(w * t)[:, None],
            "normals": per_ray(w[:, None] * normal) if shade else None,
            "weights": w,
        }
        if shade:
            out.update(dirs=d[ray], normals_per_sample=normal)
        return out

    def _occupied(self, pts: torch.Tensor) -> torch.Tensor:
        r = self.config.occupancy_resolution
        ijk = ((pts / self.config.bound + 1) / 2 * r).long().clamp(0, r - 1)
        return self.occupancy[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    @torch.no_grad()
    def update_occupancy(self) -> None:
        """Mark cells whose density (at centre and 8 jittered points) gives opacity above threshold."""
        c, r = self.config, self.config.occupancy_resolution
        axis = (torch.arange(r, device=self.occupancy.device).float() + 0.5) / r * 2 - 1
        centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3) * c.bound
        half = c.bound / r
        jittered = centres + (torch.rand(8, *centres.shape, device=centres.device) * 2 - 1) * half
        best = self.density(torch.cat([centres[None], jittered]).view(-1, 3)).view(9, -1).amax(0)
        opacity = 1 - torch.exp(-best * self.step_size)
        self.occupancy.copy_((opacity > c.occupancy_threshold).view(r, r, r))

    # --- optimisation -----------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        c = self.config
        return [
            {"params": list(self.density_grids.parameters()) + list(self.encoding.parameters()), "lr": c.lr_grid, "name": "grids"},
            {"params": list(self.mlp.parameters()) + [self.light, self.ambient_logit, self.background_logit],
             "lr": c.lr_mlp, "name": "mlp"},
        ]

    def regularizers(self, out: RenderOutput, step: int) -> dict[str, torch.Tensor]:
        weights = self.config.regularizers
        losses = {}
        a = out.alpha.clamp(1e-5, 1 - 1e-5)
        if weights.get("loss_opacity", 0) > 0:
            losses["loss_opacity"] = weights["loss_opacity"] * a.mean()
        if weights.get("loss_entropy", 0) > 0:
            losses["loss_entropy"] = weights["loss_entropy"] * (-(a * a.log() + (1 - a) * (1 - a).log())).mean()
        if weights.get("loss_orient", 0) > 0 and out.aux and "normals_per_sample" in out.aux:
            w, n, d = out.aux["weights"], out.aux["normals_per_sample"], out.aux["dirs"]  # packed samples
            facing = (n * d).sum(-1).clamp(min=0) ** 2
            losses["loss_orient"] = weights["loss_orient"] * (w.detach() * facing).sum() / out.alpha.numel()
        return losses

    def post_backward(self, step: int) -> None:
        if step % self.config.occupancy_every == 0:
            self.update_occupancy()

    @torch.no_grad()
    def density_grid(self, resolution: int = 128, chunk: int = 1 << 18) -> tuple[torch.Tensor, float]:
        """Density on a ``resolution``^3 grid over the scene cube, indexed [x, y, z]; returns (values, spacing)."""
        b = self.config.bound
        axis = torch.linspace(-b, b, resolution)
        pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
        dev = self.device
        vals = torch.cat([self.density(pts[i:i + chunk].to(dev)).cpu() for i in range(0, len(pts), chunk)])
        return vals.view(resolution, resolution, resolution), float(axis[1] - axis[0])

    @torch.no_grad()
    def colour_at(self, xyz: torch.Tensor, shaded: bool = False) -> torch.Tensor:
        """Albedo (or shaded colour under the learned light) at points (N, 3) on any device; on the CPU."""
        xyz = xyz.to(self.device)
        alb = self.albedo(xyz)
        return (self.shade(alb, self.normals(xyz)) if shaded else alb).cpu()

    def shade(self, albedo: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """Diffuse shading under the learned light: albedo * (ambient + (1 - ambient) * max(0, n . l))."""
        light = self.light / self.light.norm().clamp(min=1e-6)
        amb = torch.sigmoid(self.ambient_logit)
        return albedo * (amb + (1 - amb) * (normals * light).sum(-1, keepdim=True).clamp(min=0))

