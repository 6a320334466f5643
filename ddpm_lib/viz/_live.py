"""One drawing function, two front ends: an ipywidgets control in a live kernel, a self-contained
JavaScript animation (matplotlib ``FuncAnimation.to_jshtml``) in the static book.

A chapter writes ``draw(fig, **params)`` once; :func:`explore` shows it through
``ipywidgets.interactive`` when a kernel runs (ipywidgets 7.x and 8.x, core widgets only) and as an
animation over one parameter, with its own slider and play controls, when the page must work with no
kernel (:func:`ddpm_lib.book.static_output`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib import animation

from ..book import static_output

#: ``draw(fig, **params)`` clears and redraws ``fig`` for one setting of the parameters.
Draw = Callable[..., None]


def _check_controls(
    controls: Mapping[str, Sequence[Any]],
    animate_over: str,
    initial: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate the controls; return the starting value of each (``initial``, else the first)."""
    if not controls:
        raise ValueError("controls must name at least one parameter and its values")
    for name, values in controls.items():
        if len(values) == 0:
            raise ValueError(f"control {name!r} has no values")
    if animate_over not in controls:
        raise ValueError(f"animate_over must be one of {list(controls)}, got {animate_over!r}")
    initial = dict(initial or {})
    for name, value in initial.items():
        if name not in controls:
            raise ValueError(f"initial names {name!r}, which is not a control: {list(controls)}")
        if value not in list(controls[name]):
            raise ValueError(f"initial {name}={value!r} is not one of {list(controls[name])}")
    return {name: initial.get(name, values[0]) for name, values in controls.items()}


def animate(
    draw: Draw,
    controls: Mapping[str, Sequence[Any]],
    animate_over: str,
    figsize: tuple[float, float] = (8.0, 3.0),
    interval_ms: int = 400,
    initial: Mapping[str, Any] | None = None,
) -> str:
    """The static twin: an HTML/JS animation of ``draw`` stepping through ``controls[animate_over]``
    (the other parameters at their ``initial`` value, default the first). Returns the HTML string
    (``to_jshtml``), one frame per value."""
    start = _check_controls(controls, animate_over, initial)
    fixed = {name: value for name, value in start.items() if name != animate_over}
    frames = list(controls[animate_over])
    fig = plt.figure(figsize=figsize)

    def update(i: int):
        fig.clear()
        draw(fig, **fixed, **{animate_over: frames[i]})
        return []

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval_ms)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return html


def make_widget(
    draw: Draw,
    controls: Mapping[str, Sequence[Any]],
    figsize: tuple[float, float] = (8.0, 3.0),
    initial: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
):
    """The live front end: ``ipywidgets.interactive`` with one slider (numbers) or dropdown per
    control that offers a choice (a control with a single value is held fixed and not shown),
    starting at ``initial`` (default: each first value) and labelled with ``labels`` (default: the
    parameter names). Returns the widget (its ``children[:-1]`` are the shown controls, in the
    order of ``controls``, the last child the output)."""
    import ipywidgets as widgets
    from IPython.display import display

    start = _check_controls(controls, next(iter(controls)), initial)
    labels = dict(labels or {})

    def control(name: str, values: Sequence[Any]):
        values, label = list(values), labels.get(name, name)
        if len(values) == 1:  # nothing to choose: no control on screen
            return widgets.fixed(values[0])
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return widgets.SelectionSlider(options=values, value=start[name], description=label,
                                           continuous_update=False)  # fmt: skip
        return widgets.Dropdown(options=values, value=start[name], description=label)

    def show(**params):
        fig = plt.figure(figsize=figsize)
        draw(fig, **params)
        display(fig)
        plt.close(fig)

    kwargs = {name: control(name, values) for name, values in controls.items()}
    return widgets.interactive(show, **kwargs)


def explore(
    draw: Draw,
    controls: Mapping[str, Sequence[Any]],
    animate_over: str | None = None,
    figsize: tuple[float, float] = (8.0, 3.0),
    static: bool | None = None,
    initial: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
):
    """Show ``draw`` interactively in a live kernel, or as an animation in the static book.

    Args:
        draw: ``draw(fig, **params)``.
        controls: parameter name -> the values a reader can choose (numbers become a slider).
        animate_over: the parameter the static animation steps through (default: the first).
        static: force one front end; ``None`` picks it with :func:`ddpm_lib.book.static_output`.
        initial: parameter name -> its starting value (default: the first of its values); the
            static animation holds the other parameters there.
        labels: parameter name -> the label of its control (default: the name).

    Returns:
        an ``IPython.display.HTML`` animation (static) or an ``ipywidgets.interactive`` (live);
        either displays itself as a cell's last expression.
    """
    animate_over = animate_over or next(iter(controls))
    _check_controls(controls, animate_over, initial)
    if static is None:
        static = static_output()
    if static:
        from IPython.display import HTML

        return HTML(animate(draw, controls, animate_over, figsize, initial=initial))
    return make_widget(draw, controls, figsize, initial=initial, labels=labels)
