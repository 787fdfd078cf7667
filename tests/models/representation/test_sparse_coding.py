"""Sparse coding: soft thresholding, ISTA/FISTA against sklearn's Lasso, unit-norm atoms,
recovery of a known dictionary, and the atoms picture."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.model_checks import assert_training_reduces_loss
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models import create
from unsup.models.representation.sparse_coding import energy, fista, ista, lipschitz, soft_threshold
from unsup.plots import save_atoms


def problem(dims=20, atoms=30, seed=0, correlated=False):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(dims, atoms, generator=g, dtype=torch.float64)
    if correlated:  # a shared direction makes D^T D ill-conditioned: ISTA crawls
        D = D + 3 * torch.randn(dims, 1, generator=g, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.randn(3, dims, generator=g, dtype=torch.float64)
    return x, D


def test_soft_threshold():
    v = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.4, 1.0, 2.5])
    assert torch.equal(soft_threshold(v, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5]))
    assert torch.equal(soft_threshold(v, 0.0), v)


def test_lipschitz_is_largest_eigenvalue_of_gram():
    _, D = problem()
    assert torch.isclose(lipschitz(D), torch.linalg.eigvalsh(D.T @ D).max())


@pytest.mark.parametrize("infer", [ista, fista])
def test_converges_to_sklearn_lasso(infer):
    from sklearn.linear_model import Lasso

    x, D = problem()
    lam = 0.3
    z = infer(x, D, lam, 3000)
    for i in range(len(x)):
        # sklearn minimises 1/(2 n) ||y - X w||^2 + alpha ||w||_1 with n = dims: alpha = lam / dims
        ref = Lasso(alpha=lam / D.shape[0], fit_intercept=False, tol=1e-12, max_iter=200000)
        ref.fit(D.numpy(), x[i].numpy())
        np.testing.assert_allclose(z[i].numpy(), ref.coef_, atol=1e-5)
    assert (z == 0).any()  # the L1 penalty is active: some exact zeros


def test_fista_reaches_the_gap_in_fewer_iterations():
    x, D = problem(correlated=True)
    lam = 0.1
    best = energy(x, D, fista(x, D, lam, 5000), lam).sum()

    def iterations_to_gap(infer, gap=1e-4):
        for k in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
            if energy(x, D, infer(x, D, lam, k), lam).sum() - best < gap:
                return k
        return 10 ** 9

    n_ista, n_fista = iterations_to_gap(ista), iterations_to_gap(fista)
    assert n_fista < n_ista, (n_fista, n_ista)


def test_warm_start_at_the_solution_stays():
    x, D = problem()
    z = fista(x, D, 0.3, 3000)
    torch.testing.assert_close(ista(x, D, 0.3, 5, z0=z), z, atol=1e-8, rtol=0)


def vectors(n=64, dims=16, seed=0):
    return torch.randn(n, dims, generator=torch.Generator().manual_seed(seed))


def test_smoke_and_training_reduces_loss():
    torch.manual_seed(0)
    model = create("sparse-coding", DataSpec((16,), None, None, "vector"), atoms=24, inference_steps=20)
    x = vectors()
    out = model.loss({"x": x})
    assert set(out) == {"loss", "mse", "sparsity"} and torch.isfinite(out["loss"])
    assert model.encode(x).shape == (64, 24)
    assert_training_reduces_loss(model, {"x": x}, lr=1e-2, steps=20)


def test_columns_unit_norm_after_training_steps():
    torch.manual_seed(0)
    model = create("sparse-coding", DataSpec((16,), None, None, "vector"), atoms=24, inference_steps=20)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = vectors()
    for _ in range(5):
        opt.zero_grad()
        model.loss({"x": x})["loss"].backward()
        opt.step()
    norms = model.D.detach().norm(dim=0)
    assert (norms - 1).abs().max() > 1e-3  # the optimiser's step left the sphere ...
    torch.testing.assert_close(model.dictionary.norm(dim=0), torch.ones(24))
    model.loss({"x": x})  # ... and the next loss puts the atoms back on it before inferring
    torch.testing.assert_close(model.D.detach().norm(dim=0), torch.ones(24))


def test_recovers_a_known_dictionary():
    g = torch.Generator().manual_seed(0)
    dims, atoms, n = 12, 16, 4000
    D_true = torch.randn(dims, atoms, generator=g)
    D_true = D_true / D_true.norm(dim=0)
    z = torch.zeros(n, atoms)
    support = torch.rand(n, atoms, generator=g).argsort(1)[:, :2]  # 2 active atoms per example
    z.scatter_(1, support, torch.randn(n, 2, generator=g).sign() * (1 + torch.rand(n, 2, generator=g)))
    x = z @ D_true.T
    torch.manual_seed(0)
    model = create("sparse-coding", DataSpec((dims,), None, None, "vector"), atoms=atoms, lam=0.1,
                   inference_steps=30, center=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for i in range(300):
        opt.zero_grad()
        model.loss({"x": x[(i % 20) * 200:(i % 20 + 1) * 200]})["loss"].backward()
        opt.step()
    cos = (D_true.T @ model.dictionary).abs()  # (true, learned)
    assert cos.max(1).values.min() > 0.9, cos.max(1).values


def test_bad_options_and_data():
    spec = DataSpec((16,), None, None, "vector")
    for opts in ({"atoms": 0}, {"lam": -1.0}, {"inference": "omp"}, {"inference_steps": 0}):
        with pytest.raises(ConfigError):
            create("sparse-coding", spec, **opts)
    with pytest.raises(ConfigError, match="continuous"):
        create("sparse-coding", DataSpec((16,), 256, None, "vector"))


def test_save_atoms(tmp_path):
    D = torch.randn(16, 6)
    save_atoms(D, tmp_path / "atoms.png", 4)
    assert Image.open(tmp_path / "atoms.png").size[0] > 0
    with pytest.raises(ConfigError):
        save_atoms(D, tmp_path / "bad.png", 3)
