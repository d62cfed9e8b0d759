"""Position encodings: the CPU trilinear lookup is torch's grid sampler, split across cores."""

import pytest
import torch
import torch.nn.functional as F

from uni3d.scenes.encodings import DenseGridEncoding, trilinear


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_trilinear_is_one_grid_sample_in_value_and_gradient(n):
    g = torch.Generator().manual_seed(n)
    grid = torch.randn(1, 3, 5, 6, 7, generator=g, requires_grad=True)
    coords = torch.rand(n, 3, generator=g) * 2.4 - 1.2  # some outside [-1, 1]: clamped at the border
    weights = torch.randn(n, 3, generator=g)
    (got_grad,) = torch.autograd.grad((trilinear(grid, coords) * weights).sum(), grid)
    ref = F.grid_sample(grid, coords.view(1, -1, 1, 1, 3), align_corners=True, padding_mode="border").view(3, -1).t()
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), grid)
    assert torch.equal(trilinear(grid, coords), ref)
    assert torch.allclose(got_grad, ref_grad, atol=1e-5)


def test_dense_encoding_concatenates_its_levels():
    enc = DenseGridEncoding((4, 8), bound=0.5, features=2, generator=torch.Generator().manual_seed(0))
    xyz = torch.tensor([[0.5, -0.5, 0.5], [0.0, 0.0, 0.0]])
    out = enc(xyz)
    assert out.shape == (2, enc.out_dim) == (2, 4)
    assert torch.equal(out[0, :2], enc.grids[0][0, :, -1, 0, -1])  # a corner: x -> W, y -> H, z -> D
    assert torch.equal(out[0, 2:], enc.grids[1][0, :, -1, 0, -1])
