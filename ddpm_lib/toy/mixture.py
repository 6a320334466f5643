r"""The isotropic Gaussian mixture, a data distribution whose whole diffusion is solvable exactly.

With :math:`q(x_0) = \sum_k \pi_k\,\mathcal N(x_0;\ \mu_k, s_k^2 I)` and the kernel
:math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)` (Ho et al. 2020,
Eq. 4) every quantity of the diffusion has a closed form at every ``t``: the marginal
:math:`q(x_t)` (:meth:`GaussianMixture.noised`, again a mixture) with its density and score, the
denoiser :math:`\mathbb E[x_0 \mid x_t]` (:meth:`GaussianMixture.posterior_mean_x0`, the target of
Tweedie's formula), the class posterior :math:`q(y = k \mid x_t)`
(:meth:`GaussianMixture.class_log_prob`, components as classes) and the optimal ε-model
(:meth:`GaussianMixture.eps_model`, a drop-in for the U-Net in every sampler of
:mod:`ddpm_lib.sample`). Chapters 1, 5, 6 and 7 measure the library against it.

Everything is computed in float64 on the CPU. Shapes: points ``[n, D]``, densities ``[n]``.
Re-exported by :mod:`ddpm_lib.toy`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from .._validate import check_int, check_number, check_t, check_time
from ..sde.vpsde import ContinuousSchedule

if TYPE_CHECKING:
    from ..diffusion import Diffusion

_LOG_2PI = math.log(2.0 * math.pi)


def _float64(name: str, value: object) -> torch.Tensor:
    try:
        v = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be numbers (a tensor or a list), got {value!r}") from err
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must be finite, got {v.tolist()}")
    return v


class GaussianMixture:
    r"""An isotropic Gaussian mixture :math:`q(x) = \sum_{k=1}^K \pi_k\,\mathcal N(x;\ \mu_k,
    s_k^2 I)` in ``D`` dimensions.

    Args:
        weights: :math:`\pi_k`, ``[K]``, each > 0, summing to 1.
        means: :math:`\mu_k`, ``[K, D]``.
        stds: :math:`s_k`, ``[K]``, each > 0 (one standard deviation per component).

    Tensors or nested lists; stored as float64 tensors ``weights``, ``means``, ``stds``."""

    __slots__ = ("weights", "means", "stds")

    def __init__(self, weights: object, means: object, stds: object):
        w, m, s = _float64("weights", weights), _float64("means", means), _float64("stds", stds)
        if not (w.dim() == 1 and m.dim() == 2 and s.dim() == 1 and len(w) >= 1
                and m.shape[0] == s.shape[0] == len(w) and m.shape[1] >= 1):  # fmt: skip
            raise ValueError(
                "weights [K], means [K, D] and stds [K] must share one length K >= 1, got shapes "
                f"{list(w.shape)}, {list(m.shape)} and {list(s.shape)}"
            )
        if bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
            raise ValueError(f"weights must be > 0 and sum to 1, got {w.tolist()}")
        if bool((s <= 0).any()):
            raise ValueError(f"stds must be > 0, got {s.tolist()}")
        self.weights, self.means, self.stds = w, m, s

    @property
    def K(self) -> int:
        """The number of components."""
        return len(self.weights)

    @property
    def D(self) -> int:
        """The dimension of a point."""
        return self.means.shape[1]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, D={self.D})"

    def check_x(self, x: object, name: str = "x") -> torch.Tensor:
        """``x`` as float64 on the CPU (not detached: autograd differentiates through it) if it is a
        floating-point tensor ``[n, D]``, else a TypeError/ValueError naming ``name``."""
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"{name} must have shape [n, D] = [n, {self.D}], got {list(x.shape)}")
        return x.to(torch.float64).cpu()  # not detached: autograd differentiates log_prob

    def joint_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \pi_k + \log\mathcal N(x;\ \mu_k, s_k^2 I)` at every row of ``x`` ``[n, D]``:
        float64 ``[n, K]`` (its softmax over ``k`` is the responsibility :math:`q(k \mid x)`)."""
        x = self.check_x(x)
        sq = (x[:, None, :] - self.means).pow(2).sum(-1) / self.stds**2
        return self.weights.log() - 0.5 * sq - self.D * (self.stds.log() + 0.5 * _LOG_2PI)

    def sample(
        self, n: int, generator: torch.Generator | None = None, return_labels: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws: a component ``k`` with probability ``weights[k]``, then its Gaussian noise.
        Returns float64 ``[n, D]`` (and the components, int64 ``[n]``, if ``return_labels``)."""
        check_int("n", n, 1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        x = self.means[k] + self.stds[k, None] * z
        return (x, k) if return_labels else x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log q(x)` at every row of ``x`` ``[n, D]``: float64 ``[n]``."""
        return torch.logsumexp(self.joint_log_prob(x), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla_x \log q(x) = \sum_k r_k(x)\,(\mu_k - x)/s_k^2` with the responsibilities
        :math:`r_k(x) = q(k \mid x)`, at every row of ``x`` ``[n, D]``: float64 ``[n, D]``."""
        x = self.check_x(x)
        r = torch.softmax(self.joint_log_prob(x), dim=-1)
        pull = (self.means - x[:, None, :]) / self.stds[:, None] ** 2  # [n, K, D]
        return (r[:, :, None] * pull).sum(1)

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_k \pi_k\,\Phi\big((x - \mu_k)/s_k\big)` for ``D = 1`` (e.g. for a
        Kolmogorov-Smirnov test): ``x`` ``[n, 1]``, float64 ``[n]``."""
        if self.D != 1:
            raise ValueError(f"cdf needs a 1-D mixture (D = 1), this one has D = {self.D}")
        z = (self.check_x(x) - self.means[:, 0]) / self.stds  # [n, K]
        return (self.weights * 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))).sum(-1)

    def noised(self, alpha_bar: float | torch.Tensor) -> GaussianMixture:
        r"""The mixture of :math:`q(x_t) = \int q(x_t \mid x_0)\,q(x_0)\,dx_0` for
        :math:`\bar\alpha_t` = ``alpha_bar`` (one number in [0, 1]): each component becomes
        :math:`\mathcal N(\sqrt{\bar\alpha_t}\,\mu_k,\ (\bar\alpha_t s_k^2 + 1 - \bar\alpha_t) I)`,
        with the same weights (Ho et al. 2020, Eq. 4, convolved with each component)."""
        ab = check_alpha_bar(alpha_bar)
        return GaussianMixture(
            self.weights, ab.sqrt() * self.means, (ab * self.stds**2 + 1.0 - ab).sqrt()
        )

    def posterior_mean_x0(self, x_t: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
        r"""The exact denoiser :math:`\mathbb E[x_0 \mid x_t]` for :math:`\bar\alpha_t` =
        ``alpha_bar`` (one number in [0, 1]), at every row of ``x_t`` ``[n, D]``: float64 ``[n, D]``.

        Given its component, :math:`x_0` and :math:`x_t` are jointly Gaussian, so
        :math:`q(x_0 \mid x_t, k)` is Gaussian with mean

        .. math:: m_k(x_t) = \mu_k + \frac{\sqrt{\bar\alpha_t}\,s_k^2}{\bar\alpha_t s_k^2
            + 1 - \bar\alpha_t}\,\big(x_t - \sqrt{\bar\alpha_t}\,\mu_k\big),

        and the answer is :math:`\sum_k q(k \mid x_t)\,m_k(x_t)` with the responsibilities under
        :math:`q(x_t)` (:meth:`class_log_prob`). Computed without the score, so that Tweedie's
        formula :math:`\sqrt{\bar\alpha_t}\,\mathbb E[x_0 \mid x_t] = x_t + (1-\bar\alpha_t)
        \nabla\log q_t(x_t)` (Efron 2011, Eq. 2.8; Robbins 1956) is something to check."""
        x = self.check_x(x_t, "x_t")
        ab = check_alpha_bar(alpha_bar)
        gain = ab.sqrt() * self.stds**2 / (ab * self.stds**2 + 1.0 - ab)  # [K]
        m = self.means + gain[:, None] * (x[:, None, :] - ab.sqrt() * self.means)  # [n, K, D]
        r = torch.softmax(self.noised(ab).joint_log_prob(x), dim=-1)
        return (r[:, :, None] * m).sum(1)

    def class_log_prob(self, x_t: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
        r"""The exact class posterior with the components as classes, by Bayes' rule under
        :math:`q(x_t)` (:meth:`noised`):

        .. math:: \log q(y = k \mid x_t) = \log\frac{\pi_k\,\mathcal N\big(x_t;\
            \sqrt{\bar\alpha_t}\mu_k, (\bar\alpha_t s_k^2 + 1 - \bar\alpha_t) I\big)}
            {\sum_j \pi_j\,\mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\mu_j,
            (\bar\alpha_t s_j^2 + 1 - \bar\alpha_t) I\big)}

        ``x_t`` ``[n, D]``, ``alpha_bar`` one number in [0, 1]; float64 ``[n, K]`` (each row's
        exponentials sum to 1). The exact classifier of chapter 7's guidance."""
        x = self.check_x(x_t, "x_t")
        return torch.log_softmax(self.noised(alpha_bar).joint_log_prob(x), dim=-1)

    def tilted_log_prob(self, x: torch.Tensor, label: int, gamma: float) -> torch.Tensor:
        r"""The log-density, up to a constant, of the tilt that classifier guidance with scale
        :math:`\gamma` aims at (Dhariwal & Nichol 2021, Sec. 4.1; chapter 7):

        .. math:: \log \pi_\gamma(x \mid y) = \log q(x) + \gamma \log q(y \mid x) - \log Z_\gamma

        with the exact class posterior at :math:`t = 0` (:meth:`class_log_prob` at
        :math:`\bar\alpha = 1`) and :math:`Z_\gamma` left out. :math:`\gamma = 0` is :math:`q(x)`,
        :math:`\gamma = 1` the Bayes conditional :math:`q(x \mid y)` (:math:`\log Z_1 = \log
        \pi_y`), :math:`\gamma > 1` sharpens it. ``x`` ``[n, D]``, ``label`` in ``0..K-1``,
        ``gamma`` a finite number; float64 ``[n]`` (a softmax over a grid normalises it)."""
        label = check_int("label", label, 0, self.K - 1)
        gamma = check_number("gamma", gamma)
        return self.log_prob(x) + gamma * self.class_log_prob(x, 1.0)[:, label]

    def tilted_sample(
        self,
        n: int,
        label: int,
        gamma: float,
        *,
        pool: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""``n`` draws of :math:`\pi_\gamma(x \mid y) \propto q(x)\,q(y \mid x)^\gamma`
        (:meth:`tilted_log_prob`) by sampling-importance-resampling (Rubin 1988): ``pool`` draws
        of :math:`q(x)` (default ``50 * n``), weighted by :math:`q(y \mid x)^\gamma \propto
        \pi_\gamma / q`, then ``n`` of them picked with replacement in proportion to the weights
        (exact as ``pool / n`` grows; a large :math:`\gamma` needs a larger pool). The pool and
        the picks come from ``generator``, in that order. Returns float64 ``[n, D]``."""
        n = check_int("n", n, 1)
        pool = 50 * n if pool is None else check_int("pool", pool, 1)
        label = check_int("label", label, 0, self.K - 1)
        gamma = check_number("gamma", gamma)
        x = self.sample(pool, generator=generator)
        w = torch.softmax(gamma * self.class_log_prob(x, 1.0)[:, label], dim=0)
        return x[torch.multinomial(w, n, replacement=True, generator=generator)]

    def eps_model(self, diffusion: Diffusion) -> MixtureEps:
        r"""The optimal ε-model of this data under ``diffusion`` (the minimiser of
        :math:`L_\text{simple}`), :math:`\epsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\,
        \nabla\log q_t(x_t)`, as a :class:`MixtureEps`: call it like the U-Net,
        ``model(x_t, t, labels=None)``."""
        return MixtureEps(self, diffusion)


def three_bumps() -> GaussianMixture:
    """Chapter 1's data distribution (``D = 1``): three narrow bumps at -0.8, 0.1 and 0.75 in
    [-1, 1], weights 0.25, 0.45, 0.30, standard deviation 0.05 each."""
    return GaussianMixture([0.25, 0.45, 0.30], [[-0.8], [0.1], [0.75]], [0.05, 0.05, 0.05])


def two_d_mixture(separated: bool = False) -> GaussianMixture:
    r"""Chapter 5's data distribution in the plane (``D = 2``): four round bumps of unequal weight
    and width inside [-1, 1]^2; the density has four modes, one at (or, where bumps overlap, just
    beside) each mean.

    By default the bumps overlap enough that Langevin dynamics with the exact score moves between
    them within :math:`n c \approx 15` time units, so it reaches the right weights.
    ``separated=True`` gives the same layout pulled apart and sharpened: the score field is more
    dramatic, and plain Langevin from broad starting points keeps the wrong weights for a long
    time (a chain rarely crosses the empty land between bumps), the failure that annealed
    Langevin (Song & Ermon 2019) repairs.

    ==========  ==========================  ====  ==========================  ====
    weight      mean                        std   mean (``separated``)        std
    ==========  ==========================  ====  ==========================  ====
    0.30/0.35   (-0.45, -0.35)              0.25  (-0.55, -0.45)              0.20
    0.25        ( 0.45, -0.40)              0.20  ( 0.55, -0.50)              0.15
    0.25        ( 0.00,  0.45)              0.20  ( 0.00,  0.55)              0.15
    0.20/0.15   ( 0.55,  0.45)              0.15  ( 0.70,  0.50)              0.10
    ==========  ==========================  ====  ==========================  ===="""
    if separated:
        return GaussianMixture(
            [0.35, 0.25, 0.25, 0.15],
            [[-0.55, -0.45], [0.55, -0.50], [0.0, 0.55], [0.70, 0.50]],
            [0.20, 0.15, 0.15, 0.10],
        )
    return GaussianMixture(
        [0.30, 0.25, 0.25, 0.20],
        [[-0.45, -0.35], [0.45, -0.40], [0.0, 0.45], [0.55, 0.45]],
        [0.25, 0.20, 0.20, 0.15],
    )


def check_alpha_bar(alpha_bar: object) -> torch.Tensor:
    r""":math:`\bar\alpha` as a float64 0-dim CPU tensor if ``alpha_bar`` is one number (or 0-dim
    tensor) in [0, 1], else a ValueError."""
    try:
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"alpha_bar must be one number in [0, 1], got {alpha_bar!r}") from err
    if ab.dim() != 0 or not 0.0 <= float(ab) <= 1.0:
        raise ValueError(f"alpha_bar must be one number in [0, 1], got {alpha_bar!r}")
    return ab


def _noised_joint(g: GaussianMixture, x: torch.Tensor, ab: torch.Tensor):
    r"""Per component of the noised mixture, for rows ``x`` ``[n, D]`` and :math:`\bar\alpha`
    ``ab`` ``[n, 1]``: the joint :math:`\log\pi_k + \log\mathcal N` up to a constant ``[n, K]``,
    :math:`x - \sqrt{\bar\alpha}\mu_k` ``[n, K, D]`` and the variances ``[n, K]``."""
    var = ab * g.stds**2 + 1.0 - ab  # [n, K]
    diff = x[:, None, :] - ab.sqrt()[:, :, None] * g.means  # [n, K, D]
    joint = g.weights.log() - 0.5 * diff.pow(2).sum(-1) / var - 0.5 * g.D * var.log()
    return joint, diff, var


class MixtureConfig(NamedTuple):
    """What the samplers read from a model: ``num_classes`` (the mixture's ``K``; the label
    ``K`` is the null label, meaning unconditional, as for the U-Net)."""

    num_classes: int


class MixtureEps:
    r"""The exact optimal ε-model of a :class:`GaussianMixture` under a :class:`~ddpm_lib.Diffusion`:

    .. math:: \epsilon^*(x_t, t) = \mathbb E[\bar\epsilon_t \mid x_t]
        = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log q_t(x_t)
        = \sqrt{1-\bar\alpha_t}\sum_k r_k(x_t)\,\frac{x_t - \sqrt{\bar\alpha_t}\,\mu_k}
        {\bar\alpha_t s_k^2 + 1 - \bar\alpha_t}

    with :math:`r_k(x_t) = q(y = k \mid x_t)` (Ho et al. 2020, Eq. 4 convolved with each
    component; the identity with the score is Tweedie's formula, Efron 2011). With ``labels`` the
    class-conditional model: :math:`r` is one-hot on component :math:`y`, i.e. the score of
    :math:`q_t(x_t \mid y)`; the label ``K`` (the null label) means unconditional, so classifier-free
    guidance in :mod:`ddpm_lib.sample` works as with the U-Net.

    Call: ``model(x_t [B, D], t, labels=None)`` with ``t`` an int or a LongTensor ``[]``/``[B]`` in
    ``[1, T]``, or a continuous time in ``(0, T]`` (a float or a floating tensor, as the SDE and
    ODE samplers pass: :math:`\bar\alpha` is then :class:`ddpm_lib.sde.ContinuousSchedule`'s, the
    same interpolation :class:`ddpm_lib.sde.VPSDE` uses, so the exact toy checks those samplers
    with no time-rounding error of its own), and ``labels`` an int or a LongTensor ``[B]`` in ``[0, K]``; returns ``[B, D]`` in
    ``x_t``'s dtype and device. Attributes: ``mixture``, ``diffusion``, ``config``
    (:class:`MixtureConfig`, read by the samplers)."""

    def __init__(self, mixture: GaussianMixture, diffusion: Diffusion):
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        self.mixture, self.diffusion = mixture, diffusion
        self.config = MixtureConfig(mixture.K)
        self._alpha_bars = diffusion.alpha_bars.detach().cpu().double()
        self._continuous: ContinuousSchedule | None = None  # built at the first continuous t

    def __repr__(self) -> str:
        return f"MixtureEps({self.mixture!r}, T={self.diffusion.T})"

    def _alpha_bar_at(self, t: object, n: int) -> torch.Tensor:
        """:math:`\\bar\\alpha` at the (integer or continuous) time ``t`` for a batch of ``n``:
        float64 ``[n]`` on the CPU."""
        t = check_time(t, self.diffusion.T)
        if isinstance(t, float) or (isinstance(t, torch.Tensor) and t.dtype.is_floating_point):
            t = torch.as_tensor(t, dtype=torch.float64).cpu()
            if float(t.min()) <= 0.0:
                raise ValueError("t must be > 0 (at t = 0 the optimal eps is 0/0)")
            if self._continuous is None:
                self._continuous = ContinuousSchedule(self._alpha_bars)
            ab = self._continuous.alpha_bar(t).reshape(-1)
        else:
            if (t if isinstance(t, int) else int(t.min())) < 1:
                raise ValueError(f"t must be an integer in [1, {self.diffusion.T}], got 0")
            ab = self._alpha_bars[t if isinstance(t, int) else t.cpu()].reshape(-1)  # [1] or [B]
        if ab.shape[0] not in (1, n):
            raise ValueError(f"t has {ab.shape[0]} entries but x_t has batch size {n}")
        return ab.expand(n)

    def __call__(
        self, x_t: torch.Tensor, t: int | torch.Tensor, labels: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        g = self.mixture
        g.check_x(x_t, "x_t")
        x = x_t.to(device="cpu", dtype=torch.float64)  # not detached: autograd reaches x_t
        n = x.shape[0]
        ab = self._alpha_bar_at(t, n)[:, None]  # [n, 1]
        joint, diff, var = _noised_joint(g, x, ab)
        r = torch.softmax(joint, dim=-1)  # [n, K]
        if labels is not None:
            y = check_t(labels, 0, g.K, "labels")
            y = torch.full((n,), y) if isinstance(y, int) or y.dim() == 0 else y.cpu()
            if y.shape != (n,):
                raise ValueError(f"labels must have shape [{n}], got {list(y.shape)}")
            cond = y < g.K  # the null label K keeps the unconditional responsibilities
            one_hot = torch.nn.functional.one_hot(y.clamp(max=g.K - 1), g.K).to(r)
            r = torch.where(cond[:, None], one_hot, r)
        eps = (1.0 - ab).sqrt() * (r[:, :, None] * diff / var[:, :, None]).sum(1)
        return eps.to(device=x_t.device, dtype=x_t.dtype)


class MixtureClassifier(MixtureEps):
    r"""The exact noise-conditional classifier of a :class:`GaussianMixture` whose components are
    the classes: ``classifier(x_t, t)`` returns the logits :math:`\log q(y = k \mid x_t)`
    ``[n, K]`` (:meth:`GaussianMixture.class_log_prob` at :math:`\bar\alpha_t`), differentiable
    in ``x_t``, for integer or continuous ``t`` as :class:`MixtureEps` takes them. Pass it as
    ``classifier=`` to a sampler: with ``classifier_scale`` :math:`\gamma` and the unconditional
    :class:`MixtureEps` the guided samples follow :math:`\propto q_t(x)\,q(y \mid x_t)^\gamma`
    at every noise level (chapter 7)."""

    def __repr__(self) -> str:
        return f"MixtureClassifier({self.mixture!r}, T={self.diffusion.T})"

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = self.mixture
        g.check_x(x_t, "x_t")
        x = x_t.to(device="cpu", dtype=torch.float64)
        ab = self._alpha_bar_at(t, x.shape[0])[:, None]  # [n, 1]
        joint, diff, var = _noised_joint(g, x, ab)
        return torch.log_softmax(joint, dim=-1).to(x_t.device)
