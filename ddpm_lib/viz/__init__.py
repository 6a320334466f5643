"""Visual helpers for the book: they draw what the library computes, and hold no math of their own.

Every ``draw_*`` draws into a matplotlib figure (``draw_*(fig, ...)``); one drawing function is shown
live (ipywidgets) in a kernel and as a JavaScript animation in the static book (:func:`explore`).
One module per chapter: :mod:`.forward` (1), :mod:`.closed_form` (2), :mod:`.posterior` (3),
:mod:`.denoise` (4: x_t and the model's x̂_0 per t, one digit's way down Algorithm 2), :mod:`.score`
(5: score fields exact vs network, Langevin chains, Tweedie's denoiser on MNIST), :mod:`.sde`
(6: the marginal, the score field and reverse-SDE vs probability-flow-ODE paths over time),
:mod:`.guidance` (7: classifier vs classifier-free guidance on the same digits per scale, masks
and inpainting; it re-exports :mod:`.tilted`, the exact tilted density vs guided samples on the
2-D toy); and
:mod:`.schedules`, the schedule explorer (sliders for the kind, beta_1, beta_T, T and s)."""

from ._live import animate, explore, make_widget
from .common import Chain, run_chain, schedule_pair
from .images import draw_image, draw_images, image_grid, to_display

__all__ = [
    "Chain",
    "animate",
    "draw_image",
    "draw_images",
    "explore",
    "image_grid",
    "make_widget",
    "run_chain",
    "schedule_pair",
    "to_display",
]
