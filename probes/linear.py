"""Linear probes: does a layer *represent* a variable?

:class:`LinearProbe` is an L2-regularised multinomial logistic regression that follows the
scikit-learn estimator contract (``fit`` returns ``self``, fitted state ends in ``_``, ``clone``
works; it passes scikit-learn's estimator checks), so it drops into scikit-learn pipelines, grid
searches and cross-validation.

Two solvers fit the same objective, ``C * sum(cross-entropy) + ||W||^2 / 2`` (the intercept is
not penalised; scikit-learn's): full-batch L-BFGS in torch, preconditioned by the objective's
curvature at zero (see ``_fit_torch``), and scikit-learn's ``LogisticRegression``. On a conv
policy's activations (1,500 x 880; ``experiments/bench_probe_fit.py``, 2 CPU cores) torch took
0.26-0.36 s against scikit-learn's 1.30-2.25 s with 54 classes and came closer to the optimum
(on the 64-unit layer 0.18 s against 12.7 s); with 2 classes 0.09-0.13 s against 0.79-1.08 s for
``solver="sklearn"`` (100 iterations, tol 1e-6: it used them all on two of three layers). On
independent Gaussian features, binary, 0.07 s against 0.11-0.30 s. So torch is the default for
any number of classes. (For binary labels scikit-learn fits one weight vector, penalised as
such: the same decision rule, not quite the same objective.)
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from jaxtyping import Float, Int
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from mesa.probes.checks import check_discrete
from mesa.probes.errors import MesaError

#: ``precondition="auto"`` uses the PCA form up to this many features. Its eigendecomposition
#: costs O(d^3): a few ms at d = 64, where it halved the fit time against "diagonal" on a
#: policy's 64 features, but 0.1 s at d = 880, where "diagonal" converged as far in as little
#: time without it (experiments/bench_probe_fit.md).
PCA_MAX_FEATURES = 512


class InvalidProbeParameter(MesaError, InvalidParameterError):
    """A constructor parameter of :class:`LinearProbe` out of its range: both mesa's one-line
    error and scikit-learn's ``InvalidParameterError`` (its message, too)."""


class LinearProbe(ClassifierMixin, BaseEstimator):
    """L2-regularised (multinomial) logistic-regression probe.

    Parameters
    ----------
    C : inverse regularisation strength, as in scikit-learn.
    max_iter : L-BFGS iterations.
    tol : stop when an L-BFGS iteration lowers the objective by less than ``tol`` times its value
        at zero weights (torch solver); scikit-learn's gradient tolerance (sklearn solver).
    solver : ``"torch"`` (L-BFGS in torch) or ``"sklearn"`` (``LogisticRegression``).
    fit_intercept : learn a bias per class.
    history_size : L-BFGS memory (torch solver).
    precondition : how the torch solver conditions the problem: ``"pca"`` (rotate to the
        features' principal axes and scale each by its curvature; costs one eigendecomposition
        of a d x d matrix), ``"diagonal"`` (scale each feature by its curvature) or ``"auto"``
        (``"pca"`` up to ``PCA_MAX_FEATURES`` features, else ``"diagonal"``).

    ``fit`` checks the parameters as scikit-learn's estimators do (``_parameter_constraints``),
    raising :class:`InvalidProbeParameter`, and refuses continuous labels (non-integer floats).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"torch", "sklearn"})],
        "fit_intercept": ["boolean"],
        "history_size": [Interval(Integral, 1, None, closed="left")],
        "precondition": [StrOptions({"auto", "pca", "diagonal"})],
    }

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 200,
        tol: float = 1e-6,
        solver: str = "torch",
        fit_intercept: bool = True,
        history_size: int = 10,
        precondition: str = "auto",
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.history_size = history_size
        self.precondition = precondition

    def fit(self, X: Float[np.ndarray, "n d"], y: Int[np.ndarray, " n"]) -> LinearProbe:
        try:
            self._validate_params()
        except InvalidParameterError as error:
            raise InvalidProbeParameter(str(error)) from None
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_discrete(y)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise MesaError(
                f"labels have one class only ({self.classes_[0]!r}); a probe needs at least two"
            )
        if self.solver == "sklearn":
            clf = LogisticRegression(
                C=self.C, max_iter=self.max_iter, tol=self.tol, fit_intercept=self.fit_intercept
            ).fit(X, y_idx)
            coef, intercept = clf.coef_, clf.intercept_
            self.n_iter_ = clf.n_iter_
            if len(self.classes_) == 2:  # sklearn's binary form: one row for class 1
                coef = np.vstack([-coef / 2, coef / 2])
                intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        else:
            coef, intercept = self._fit_torch(X, y_idx)
        self.coef_, self.intercept_ = coef, intercept
        return self

    def _precondition(
        self, xc: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The features in preconditioned coordinates, the per-coordinate scale ``s`` and the PCA
        form's rotation and scaling ``R`` (None for "diagonal").

        The objective is solved in coordinates V with W = R @ V, where R approximates the
        inverse square root of its Hessian at W = 0: there the cross-entropy's curvature is
        (C / k) X_c' X_c (uniform predictions over k classes) and the penalty's the identity.
        "pca": R = U diag(s) from X_c' X_c = U diag(lam) U', s = (C lam / k + 1) ** -0.5; the
        rotation keeps the penalty isotropic (||W||^2 = ||diag(s) V||^2). "diagonal": the same
        per raw feature, without the rotation. Plain standardisation would penalise a feature
        with small variance by 1 / sd^2 in its coordinates and crawl on conv activations, whose
        rarely active units have tiny variance (experiments/bench_probe_fit.md).
        """
        d = xc.shape[1]
        if self.precondition == "pca" or (self.precondition == "auto" and d <= PCA_MAX_FEATURES):
            lam, U = torch.linalg.eigh(xc.t() @ xc)
            s = (self.C * lam.clamp_min(0) / k + 1).rsqrt()
            return xc @ U * s, s, U * s  # (not xc @ R: the zoo results were computed in this order)
        s = (self.C * (xc * xc).sum(0) / k + 1).rsqrt()
        return xc * s, s, None

    def _fit_torch(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, d = X.shape
        k = len(self.classes_)
        # no intercept: no centring either (a centred fit would carry one in -mu @ W)
        mu = X.mean(0) if self.fit_intercept else np.zeros(d)
        # float32: on 2 CPU cores it ran several times faster than float64 at the same accuracy
        x, s, R = self._precondition(torch.from_numpy(X - mu).float(), k)
        x_t = x.t().contiguous()
        t = torch.from_numpy(y)
        rows = torch.arange(n)
        pen = (s * s)[:, None]  # the penalty ||W||^2 / 2 in V
        b_scale = (k / (self.C * n)) ** 0.5  # the intercept's curvature is C n / k
        v = torch.zeros(d, k)
        beta = torch.zeros(k)
        params = [v, beta] if self.fit_intercept else [v]
        f0 = self.C * n * float(np.log(k))  # the objective at zero weights
        opt = torch.optim.LBFGS(
            params,
            lr=1,
            max_iter=self.max_iter,
            tolerance_grad=self.tol * self.C * n,
            tolerance_change=self.tol * f0,
            history_size=self.history_size,
            line_search_fn="strong_wolfe",
        )

        # The gradient is written out (softmax minus one-hot, through the features) rather
        # than taken by autograd: the same numbers, 1.3-1.7x faster a step on 2 CPU cores.
        @torch.no_grad()
        def closure() -> torch.Tensor:
            log_p = torch.log_softmax(torch.addmm(beta * b_scale, x, v), 1)
            ce = -log_p[rows, t].sum()
            g = log_p.exp_()
            g[rows, t] -= 1.0
            g.mul_(self.C)
            v.grad = torch.addmm(v * pen, x_t, g)
            if self.fit_intercept:
                beta.grad = g.sum(0) * b_scale
            return self.C * ce + 0.5 * (v * v * pen).sum()

        opt.step(closure)
        self.n_iter_ = np.array([opt.state[opt._params[0]]["n_iter"]])
        v64 = v.double()
        w_raw = (R.double() @ v64 if R is not None else v64 * s.double()[:, None]).numpy()
        b_raw = beta.double().numpy() * b_scale - mu @ w_raw
        return w_raw.T.copy(), b_raw

    def decision_function(self, X: Float[np.ndarray, "n d"]) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_proba(self, X: Float[np.ndarray, "n d"]) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        scores -= scores.max(1, keepdims=True)
        p = np.exp(scores)
        return p / p.sum(1, keepdims=True)  # type: ignore[no-any-return]

    def predict(self, X: Float[np.ndarray, "n d"]) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(1)]  # type: ignore[no-any-return]

    def directions(self) -> np.ndarray:
        """Unit-norm weight directions, one row per class (one row for a binary probe)."""
        check_is_fitted(self)
        d = self.coef_[1:2] - self.coef_[0:1] if len(self.classes_) == 2 else self.coef_
        return d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)  # type: ignore[no-any-return]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags
