"""iALS: implicit-feedback matrix factorisation (Hu, Koren & Volinsky, ICDM 2008).

Every unobserved (user, item) pair is a weak zero and every interaction a positive with
confidence ``1 + alpha``. Rendle et al. (2022) show a tuned iALS stays competitive
with much newer models. Training is delegated to the ``implicit`` library, imported
only when a model is fitted so the rest of vidrec imports fast.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from vidrec.evaluation.baselines.base import Baseline


@dataclass(frozen=True)
class IALSConfig:
    """Hyper-parameters of :class:`IALS`."""

    factors: int = 64  # embedding size
    regularization: float = 0.1  # L2 penalty on the factors (unscaled, as in implicit)
    alpha: float = 10.0  # confidence of an observed interaction is 1 + alpha
    iterations: int = 15  # alternating sweeps
    random_state: int = 0  # seeds the factor initialisation
    num_threads: int = 0  # implicit's own threads; 0 = all cores

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError(
                "iALS factors and iterations must be positive, "
                f"got {self.factors}, {self.iterations}"
            )
        if self.regularization < 0 or not self.alpha > 0:
            raise ValueError(
                "iALS needs regularization >= 0 and alpha > 0, "
                f"got {self.regularization}, {self.alpha}"
            )
        if self.num_threads < 0:
            raise ValueError(f"iALS num_threads must be >= 0, got {self.num_threads}")


class IALS(Baseline):
    """Weighted matrix factorisation by alternating least squares (``implicit``)."""

    name = "iALS"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: int = 0,
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        self.config = IALSConfig(
            factors=factors, regularization=regularization, alpha=alpha,
            iterations=iterations, random_state=random_state, num_threads=num_threads,
        )
        self.user_factors: np.ndarray | None = None  # (n_users, factors) float32
        self.item_factors: np.ndarray | None = None  # (n_items, factors) float32

    def params(self) -> dict[str, object]:
        c = self.config
        return {"factors": c.factors, "regularization": c.regularization, "alpha": c.alpha,
                "iterations": c.iterations}

    def _fit(self, X: csr_matrix) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        # implicit parallelises over users itself; a threaded BLAS underneath only
        # oversubscribes the cores (implicit warns about it), so pin BLAS to 1 thread.
        with _single_threaded_blas():
            model = AlternatingLeastSquares(
                factors=c.factors,
                regularization=c.regularization,
                alpha=c.alpha,
                iterations=c.iterations,
                random_state=c.random_state,
                num_threads=c.num_threads,
            )
            model.fit(X, show_progress=False)  # implicit >= 0.5 takes user x item
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return self.user_factors[user_idx] @ self.item_factors.T  # (n, n_items)


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl ships with implicit, but stay usable without it
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")
