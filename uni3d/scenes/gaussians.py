"""3D Gaussians with a pure-torch rasteriser (gsplat on CUDA when installed), densify and prune.

Each Gaussian has a mean, an anisotropic scale, a rotation (unit quaternion), an opacity and a
view-independent albedo. Rendering (Kerbl et al. 2023): project each Gaussian to a 2D Gaussian
with the perspective Jacobian, sort by depth, and alpha-composite front to back per pixel; each
pixel only visits the Gaussians whose 3-sigma box holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput, Scene
from uni3d.scenes.encodings import cuda_extension_available


@dataclass
class GaussiansConfig:
    """The 3D Gaussian scene."""

    num_init: int = 2000
    """Gaussians at the start, spread uniformly in a ball."""
    init_radius: float = 0.5
    """Radius of that ball (world units)."""
    init_scale: float = 0.04
    """Initial standard deviation of each Gaussian (world units)."""
    init_opacity: float = 0.1
    """Initial opacity."""
    bound: float = 0.9
    """Half-size of the scene cube used by export (world units)."""
    lr_means: float = 0.005
    lr_scales: float = 0.01
    lr_quats: float = 0.005
    lr_opacity: float = 0.05
    lr_colours: float = 0.02
    densify_from: int = 100
    """First step of densification."""
    densify_until: int = 600
    """Last step of densification."""
    densify_every: int = 100
    """Steps between densification rounds."""
    grad_threshold: float = 0.0002
    """Mean 2D-position gradient norm above which a Gaussian is cloned (small) or split (large)."""
    split_scale: float = 0.03
    """Largest scale (world units) under which a Gaussian is cloned rather than split."""
    prune_opacity: float = 0.01
    """Gaussians more transparent than this are removed when densifying."""
    max_gaussians: int = 20000
    """Densification stops adding beyond this count."""
    background: Literal["white", "learned"] = "white"
    """white (Shapes World) or a learned constant colour."""
    backend: Literal["auto", "torch"] = "auto"
    """auto: gsplat's CUDA rasteriser when on CUDA with gsplat installed; torch: always the pure-torch path."""


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), normalised here -> (N, 3, 3) rotation matrices."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).view(-1, 3, 3)


def covariances(log_scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """World-space covariance R S S^T R^T, (N, 3, 3)."""
    m = quat_to_rotmat(quats) * torch.exp(log_scales)[:, None, :]
    return m @ m.transpose(1, 2)


PAIRS_PER_CHUNK = 1 << 21
"""(point, Gaussian) pairs the export evaluates at once: its memory stays near 100 MB of offsets whatever the count."""


def mahalanobis_sq(d: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """``d^T S^-1 d`` over the last axis, for offsets ``d`` (..., 3) and inverse covariances ``inv`` (..., 3, 3) that
    broadcast against them; two products, without the outer product that a three-operand einsum may build."""
    return ((d[..., None, :] @ inv).squeeze(-2) * d).sum(-1)


def box_cells(lo: torch.Tensor, size: torch.Tensor, first: int = 0, last: int | None = None):
    """The (box, cell) pairs numbered ``first`` to ``last`` (default: all) of axis-aligned boxes of integer cells with
    corners ``lo`` (N, D) and ``size`` (N, D) cells per axis, box after box, the last axis fastest: each pair's box
    (P,) and cell (P, D). A box of size 0 on an axis has no cells."""
    count = size.prod(-1)
    ends = count.cumsum(0)
    total = int(ends[-1]) if len(ends) else 0
    pair = torch.arange(first, total if last is None else min(last, total), device=lo.device)
    box = torch.searchsorted(ends, pair, right=True)
    k = pair - (ends - count)[box]
    cells = []
    for axis in reversed(range(lo.shape[1])):
        cells.append(lo[box, axis] + k % size[box, axis])
        k = k // size[box, axis]
    return box, torch.stack(cells[::-1], -1)


def view_matrices(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor, float]:
    """World-to-camera rotations (B, 3, 3) (rows: right, up, forward), centres (B, 3), focal in NDC units."""
    right, true_up, forward = cams.basis()
    return torch.stack([right, true_up, forward], dim=1), cams.positions(), 1.0 / math.tan(math.radians(cams.fov) / 2)


def project(means, cov3, opacity, colours, rot, centre, focal, resolution):
    """Project Gaussians into one camera: pixel means (N, 2), 2D conics (N, 3), depth (N,), radius (N,)."""
    p = (means - centre) @ rot.T  # camera coords: x right, y up, z forward
    z = p[:, 2].clamp(min=1e-3)
    f = focal * resolution / 2  # pixels per unit of x/z
    u = f * p[:, 0] / z + resolution / 2
    v = -f * p[:, 1] / z + resolution / 2
    # Jacobian of (u, v) wrt camera coords
    J = torch.zeros(means.shape[0], 2, 3, dtype=means.dtype, device=means.device)
    J[:, 0, 0] = f / z
    J[:, 0, 2] = -f * p[:, 0] / z**2
    J[:, 1, 1] = -f / z
    J[:, 1, 2] = f * p[:, 1] / z**2
    cov_cam = rot @ cov3 @ rot.T
    cov2 = J @ cov_cam @ J.transpose(1, 2) + 0.3 * torch.eye(2, device=means.device)
    a, b, c = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    det = (a * c - b * b).clamp(min=1e-12)
    conic = torch.stack([c / det, -b / det, a / det], dim=-1)
    mid = 0.5 * (a + c)
    radius = 3 * torch.sqrt(mid + torch.sqrt((mid * mid - det).clamp(min=0.1)))
    return torch.stack([u, v], -1), conic, p[:, 2], radius


def rasterize(means2d, conic, depth, radius, opacity, colours, resolution: int, background):
    """Alpha-composite 2D Gaussians front to back. Returns rgb (3, H, W), alpha (1, H, W), depth (1, H, W).

    Only the (pixel, Gaussian) pairs whose pixel centre lies within the Gaussian's 3-sigma box are evaluated, sorted by
    pixel with the Gaussians in depth order; each pair's transmittance is the product of ``1 - alpha`` over the
    pixel's nearer pairs, taken as a cumulative sum of logs (in float64) restarted at each pixel. The work grows
    with the pixels the Gaussians cover, not with pixels x Gaussians.
    """
    dev, res = means2d.device, resolution
    visible = (depth > 0.05) & (means2d[:, 0] + radius > 0) & (means2d[:, 0] - radius < res) \
        & (means2d[:, 1] + radius > 0) & (means2d[:, 1] - radius < res)
    idx = visible.nonzero().squeeze(-1)
    idx = idx[torch.argsort(depth[idx])]  # front to back
    m, cn, d, r = means2d[idx], conic[idx], depth[idx], radius[idx]
    op, col = opacity[idx], colours[idx]
    with torch.no_grad():  # the pixels of each Gaussian's box: centres i + 0.5 strictly within m +- r
        lo = torch.floor(m - r[:, None] - 0.5).long() + 1
        hi = torch.ceil(m + r[:, None] - 0.5).long() - 1
        lo, hi = lo.clamp(0, res), hi.clamp(-1, res - 1)  # an empty box where it misses the image
        g, cell = box_cells(lo.flip(-1), (hi - lo + 1).clamp(min=0).flip(-1))  # (y, x): x fastest
        py, px = cell.unbind(-1)
        pixel = py * res + px
        order = torch.sort(pixel, stable=True).indices  # by pixel; Gaussians stay in depth order within one
        g, pixel = g[order], pixel[order]
        px, py = px[order], py[order]
    # per-pair copies by index_select, whose backward (index_add) sums in a fixed order: indexing with repeated
    # indices back-propagates through an accumulation that varies from run to run on several threads
    mg, c = m.index_select(0, g), cn.index_select(0, g)
    dx = px.to(m.dtype) + 0.5 - mg[:, 0]
    dy = py.to(m.dtype) + 0.5 - mg[:, 1]
    power = -0.5 * (c[:, 0] * dx * dx + c[:, 2] * dy * dy) - c[:, 1] * dx * dy
    alpha = (op.index_select(0, g) * torch.exp(power.clamp(max=0))).clamp(max=0.99)
    alpha = alpha * (alpha > 1.0 / 255).to(alpha.dtype)
    # transmittance before each pair: the product of (1 - alpha) over the pixel's nearer pairs, as a sum of logs
    log_t = torch.log1p(-alpha).double()
    nearer = torch.cumsum(log_t, 0) - log_t  # over every earlier pair, of this pixel and the pixels before it
    with torch.no_grad():
        first = torch.ones_like(pixel, dtype=torch.bool)
        first[1:] = pixel[1:] != pixel[:-1]
        start = torch.cummax(torch.where(first, torch.arange(len(pixel), device=dev), 0), 0).values
    w = alpha * torch.exp(nearer - nearer.index_select(0, start)).to(alpha.dtype)
    n = res * res
    alpha_img = torch.zeros(n, device=dev, dtype=w.dtype).index_add(0, pixel, w)
    rgb = torch.zeros(n, 3, device=dev, dtype=w.dtype).index_add(0, pixel, w[:, None] * col.index_select(0, g))
    rgb = rgb + (1 - alpha_img)[:, None] * background
    depth_img = torch.zeros(n, device=dev, dtype=w.dtype).index_add(0, pixel, w * d.index_select(0, g))
    return rgb.T.reshape(3, res, res), alpha_img.view(1, res, res), depth_img.view(1, res, res)


class GaussianScene(Scene):
    """A cloud of 3D Gaussians with view-independent albedo."""

    def __init__(self, config: GaussiansConfig = GaussiansConfig(), seed: int = 0):
        super().__init__()
        self.config = c = config
        g = torch.Generator().manual_seed(seed)
        n = c.num_init
        direction = F.normalize(torch.randn(n, 3, generator=g), dim=-1)
        radius = c.init_radius * torch.rand(n, 1, generator=g) ** (1 / 3)
        self.means = nn.Parameter(direction * radius)
        self.log_scales = nn.Parameter(torch.full((n, 3), math.log(c.init_scale)))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1))
        self.opacity_logits = nn.Parameter(torch.full((n,), math.log(c.init_opacity / (1 - c.init_opacity))))
        self.colour_logits = nn.Parameter(0.1 * torch.randn(n, 3, generator=g))
        self.background_logit = nn.Parameter(torch.full((3,), 4.0))
        self.register_buffer("grad_accum", torch.zeros(n))
        self.register_buffer("grad_count", torch.zeros(n))
        self._means2d: list[torch.Tensor] = []
        self.optimizer: torch.optim.Optimizer | None = None  # set by the trainer, for densification

    @property
    def num(self) -> int:
        return self.means.shape[0]

    @property
    def background(self) -> torch.Tensor:
        if self.config.background == "white":
            return torch.ones(3, device=self.means.device)
        return torch.sigmoid(self.background_logit)

    def render(self, cams: Cameras, resolution: int, **_) -> RenderOutput:
        if self.config.backend == "auto" and cuda_extension_available("gsplat", self.means.device):
            return self._render_gsplat(cams, resolution)  # pragma: no cover - CUDA only
        cams = cams.to(self.means.device)
        rots, centres, focal = view_matrices(cams)
        cov3 = covariances(self.log_scales, self.quats)
        opacity, colours = torch.sigmoid(self.opacity_logits), torch.sigmoid(self.colour_logits)
        rgbs, alphas, depths = [], [], []
        self._means2d = []
        for i in range(len(cams)):
            m2d, conic, depth, radius = project(self.means, cov3, opacity, colours, rots[i], centres[i], focal, resolution)
            if self.training and m2d.requires_grad:
                m2d.retain_grad()
                self._means2d.append(m2d)
            rgb, a, d = rasterize(m2d, conic, depth, radius, opacity, colours, resolution, self.background)
            rgbs.append(rgb)
            alphas.append(a)
            depths.append(d)
        # the rasteriser composites camera z; the contract is distance along the ray
        depth = torch.stack(depths) / cams.ray_cosines(resolution)
        return RenderOutput(rgb=torch.stack(rgbs), alpha=torch.stack(alphas), depth=depth)

    def _render_gsplat(self, cams: Cameras, resolution: int) -> RenderOutput:  # pragma: no cover - CUDA only
        """gsplat's CUDA rasteriser with the same cameras (OpenCV convention: y down, z forward)."""
        import gsplat

        dev = self.means.device
        rots, centres, focal = view_matrices(cams)
        flip = torch.diag(torch.tensor([1.0, -1.0, 1.0]))
        r = flip @ rots  # rows: right, down, forward
        viewmats = torch.eye(4).repeat(len(cams), 1, 1)
        viewmats[:, :3, :3] = r
        viewmats[:, :3, 3] = -(r @ centres[..., None])[..., 0]
        f = focal * resolution / 2
        K = torch.tensor([[f, 0, resolution / 2], [0, f, resolution / 2], [0, 0, 1.0]]).repeat(len(cams), 1, 1)
        colors, alphas, _ = gsplat.rasterization(
            self.means, F.normalize(self.quats, dim=-1), torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
            torch.sigmoid(self.colour_logits), viewmats.to(dev), K.to(dev), resolution, resolution,
            backgrounds=self.background.expand(len(cams), 3), render_mode="RGB+D",  # accumulated camera z, as the torch path composites
        )
        rgb, depth = colors[..., :3].permute(0, 3, 1, 2), colors[..., 3:].permute(0, 3, 1, 2)
        depth = depth / cams.ray_cosines(resolution).to(dev)
        return RenderOutput(rgb=rgb, alpha=alphas.permute(0, 3, 1, 2), depth=depth)

    def bind_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer

    def param_groups(self) -> list[dict]:
        c = self.config
        return [
            {"params": [self.means], "lr": c.lr_means, "name": "means"},
            {"params": [self.log_scales], "lr": c.lr_scales, "name": "log_scales"},
            {"params": [self.quats], "lr": c.lr_quats, "name": "quats"},
            {"params": [self.opacity_logits], "lr": c.lr_opacity, "name": "opacity_logits"},
            {"params": [self.colour_logits], "lr": c.lr_colours, "name": "colour_logits"},
            {"params": [self.background_logit], "lr": c.lr_colours, "name": "background"},
        ]

    # --- densify and prune ------------------------------------------------------------------
    def post_backward(self, step: int) -> None:
        c = self.config
        for m2d in self._means2d:
            if m2d.grad is not None:
                norm = m2d.grad.norm(dim=-1)
                self.grad_accum += norm.detach()
                self.grad_count += (norm > 0).float()
        self._means2d = []
        if c.densify_from <= step <= c.densify_until and step % c.densify_every == 0 and step > 0:
            self.densify_and_prune()

    @torch.no_grad()
    def densify_and_prune(self) -> None:
        c = self.config
        mean_grad = self.grad_accum / self.grad_count.clamp(min=1)
        big = torch.exp(self.log_scales).max(-1).values > c.split_scale
        grow = mean_grad > c.grad_threshold
        room = max(0, c.max_gaussians - self.num)
        clone = (grow & ~big).nonzero().squeeze(-1)[:room]
        split = (grow & big).nonzero().squeeze(-1)[: max(0, room - clone.numel())]
        new = {name: [getattr(self, name).data] for name in self._tensors()}
        for name in self._tensors():
            new[name].append(getattr(self, name).data[clone])
        if split.numel():  # two children drawn from the parent, 1/1.6 of its size
            std = torch.exp(self.log_scales[split])
            offset = (quat_to_rotmat(self.quats[split]) @ (torch.randn_like(std) * std)[..., None])[..., 0]
            self.means.data[split] = self.means.data[split] - offset
            self.log_scales.data[split] -= math.log(1.6)
            for name in self._tensors():
                new[name].append(getattr(self, name).data[split])
            new["means"][-1] = self.means.data[split] + 2 * offset
        merged = {name: torch.cat(v) for name, v in new.items()}
        keep = torch.sigmoid(merged["opacity_logits"]) > c.prune_opacity
        self._replace({name: v[keep] for name, v in merged.items()},
                      lambda x: torch.cat([x, x[clone], x[split]])[keep])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a checkpoint, whose cloud may have grown or shrunk while densifying: the per-Gaussian parameters
        (and the bound optimizer's references to them) are resized to the checkpoint's first."""
        n = state_dict["means"].shape[0]
        if n != self.num:
            self._replace({name: getattr(self, name).data.new_empty((n, *getattr(self, name).shape[1:]))
                           for name in self._tensors()}, remap=None)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _tensors(self) -> list[str]:
        return ["means", "log_scales", "quats", "opacity_logits", "colour_logits"]

    def _replace(self, tensors: dict[str, torch.Tensor], remap) -> None:
        """Swap in new per-Gaussian tensors, carrying the optimizer's moments through ``remap`` (None: drop them)."""
        for name, value in tensors.items():
            old = getattr(self, name)
            new = nn.Parameter(value.contiguous())
            if self.optimizer is not None:
                for group in self.optimizer.param_groups:
                    if group["params"][0] is old:
                        state = self.optimizer.state.pop(old, None)
                        group["params"][0] = new
                        if state and remap is not None:
                            state = {k: remap(v) if torch.is_tensor(v) and v.shape[:1] == old.shape[:1] else v
                                     for k, v in state.items()}
                            self.optimizer.state[new] = state
            setattr(self, name, new)
        n = self.means.shape[0]
        self.grad_accum = torch.zeros(n, device=self.means.device)
        self.grad_count = torch.zeros(n, device=self.means.device)

    # --- fields for export ------------------------------------------------------------------
    @torch.no_grad()
    def density(self, xyz: torch.Tensor, pairs_per_chunk: int = PAIRS_PER_CHUNK) -> torch.Tensor:
        """Opacity-weighted Gaussian mixture sum_i o_i exp(-0.5 d^T S_i^-1 d) at points (N, 3), on the CPU."""
        inv = self._inverse_covariances()
        op = torch.sigmoid(self.opacity_logits)
        out = []
        chunk = max(1, pairs_per_chunk // max(1, self.num))
        for i in range(0, xyz.shape[0], chunk):
            d = xyz[i:i + chunk, None].to(self.means) - self.means[None]
            out.append((op * torch.exp(-0.5 * mahalanobis_sq(d, inv))).sum(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def _inverse_covariances(self) -> torch.Tensor:
        eye = torch.eye(3, device=self.means.device)
        return torch.linalg.inv(covariances(self.log_scales, self.quats) + 1e-8 * eye)

    @torch.no_grad()
    def density_grid(self, resolution: int = 96, support: float = 4.0,
                     pairs_per_chunk: int = PAIRS_PER_CHUNK) -> tuple[torch.Tensor, float]:
        """:meth:`density` on a ``resolution``^3 grid over the scene cube, each Gaussian summed over the grid points
        of its ellipsoid's bounding box at ``support`` standard deviations (a term beyond it is below
        ``exp(-support^2 / 2)`` of its opacity: 3e-4 at 4). Its cost grows with the points the Gaussians cover, not
        with points x Gaussians."""
        b = self.config.bound
        axis = torch.linspace(-b, b, resolution)
        step = float(axis[1] - axis[0])
        means = self.means.detach().cpu().float()
        cov = covariances(self.log_scales, self.quats).detach().cpu().float()
        inv = self._inverse_covariances().detach().cpu().float()
        op = torch.sigmoid(self.opacity_logits.detach().cpu().float())
        half = support * torch.diagonal(cov, dim1=-2, dim2=-1).clamp(min=0).sqrt()  # the ellipsoid's box
        lo = torch.ceil((means - half + b) / step).clamp(0, resolution).long()
        hi = torch.floor((means + half + b) / step).clamp(-1, resolution - 1).long()
        size = (hi - lo + 1).clamp(min=0)  # grid points per axis in each box (0: outside the grid)
        grid = torch.zeros(resolution ** 3)
        for first in range(0, int(size.prod(-1).sum()), pairs_per_chunk):  # (Gaussian, grid point) pairs
            g, idx = box_cells(lo, size, first, first + pairs_per_chunk)
            d = axis[idx] - means[g]
            value = op[g] * torch.exp(-0.5 * mahalanobis_sq(d, inv[g]))
            grid.index_add_(0, (idx[:, 0] * resolution + idx[:, 1]) * resolution + idx[:, 2], value)
        return grid.view(resolution, resolution, resolution), step

    @torch.no_grad()
    def colour_at(self, xyz: torch.Tensor, shaded: bool = False, pairs_per_chunk: int = PAIRS_PER_CHUNK) -> torch.Tensor:
        """Colour of the Gaussians around each point, weighted by their density there; on the CPU."""
        inv = self._inverse_covariances()
        op, col = torch.sigmoid(self.opacity_logits), torch.sigmoid(self.colour_logits)
        out = []
        chunk = max(1, pairs_per_chunk // max(1, self.num))
        for i in range(0, xyz.shape[0], chunk):
            d = xyz[i:i + chunk, None].to(self.means) - self.means[None]
            w = op * torch.exp(-0.5 * mahalanobis_sq(d, inv)) + 1e-12
            out.append(((w[..., None] * col).sum(1) / w.sum(1, keepdim=True)).cpu())
        return torch.cat(out)
