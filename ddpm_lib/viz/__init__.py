"""Visual helpers for the book: one drawing function each, shown live (ipywidgets) in a kernel and
as a JavaScript animation in the static book (see :func:`explore`)."""

from ._live import animate, explore, make_widget
from .images import image_grid, show_images, to_display

__all__ = ["animate", "explore", "make_widget", "image_grid", "show_images", "to_display"]
