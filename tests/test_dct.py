import numpy as np
import pytest
import scipy.fft
import torch

from spikescope.dct import dct2, dct_basis_2d, dct_matrix


@pytest.mark.parametrize("n", [1, 3, 7, 8, 28])
def test_dct_matrix_is_orthonormal_and_equals_scipy(n):
    d = dct_matrix(n)
    assert torch.allclose(d @ d.T, torch.eye(n, dtype=d.dtype), atol=1e-12)
    reference = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)
    np.testing.assert_allclose(d.numpy(), reference, atol=1e-12)


@pytest.mark.parametrize("size", [3, 7, 8])
def test_2d_basis_gram_matrix_is_identity(size):
    flat = dct_basis_2d(size).reshape(size * size, -1)
    assert torch.allclose(flat @ flat.T, torch.eye(size * size), atol=1e-6)


def test_basis_filter_u_v_varies_along_height_with_u_and_width_with_v():
    basis = dct_basis_2d(7).reshape(7, 7, 7, 7)  # [u, v, h, w]
    vertical = basis[1, 0]  # u = 1: one half-cosine down the rows, constant along each row
    horizontal = basis[0, 1]  # v = 1: varies across the columns, constant down each column
    assert torch.allclose(vertical, vertical[:, :1].expand(7, 7))
    assert vertical[:, 0].std() > 0.1
    assert torch.allclose(horizontal, horizontal[:1, :].expand(7, 7))
    assert horizontal[0, :].std() > 0.1


def test_dct2_equals_scipy_dctn_on_random_maps():
    maps = torch.rand(3, 5, 9, 12, dtype=torch.float64)
    expected = scipy.fft.dctn(maps.numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(maps).numpy(), expected, atol=1e-10)
