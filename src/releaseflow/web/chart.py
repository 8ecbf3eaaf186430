"""A bar chart drawn on the server as inline SVG: groups (e.g. stages) of bars (e.g. deployed,
failed, rolled back). Python works out the geometry; the template ``_chart.html`` draws it with a
title, a description, and each bar's value written beside it, so the figures can be read without
telling the colours apart (the legend names each series too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BAR_HEIGHT = 18
BAR_GAP = 4
GROUP_GAP = 14
LABEL_WIDTH = 140
PLOT_WIDTH = 360
VALUE_WIDTH = 110


@dataclass(frozen=True)
class Bar:
    series: int  # index of the series: its colour class, and its name in the legend
    name: str
    value: float
    text: str  # the value as written beside the bar
    y: float
    width: float


@dataclass(frozen=True)
class Group:
    label: str
    y: float  # where the group's label sits
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class BarChart:
    title: str
    description: str
    series: tuple[str, ...]
    groups: tuple[Group, ...]
    width: int
    height: float
    label_width: int = LABEL_WIDTH


def bar_chart(
    title: str, series: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]], unit: str = ""
) -> BarChart:
    """The chart of ``groups`` (a label, and one value per series); bars scale to the largest value."""
    largest = max((value for _, values in groups for value in values), default=0) or 1
    laid: list[Group] = []
    y = 0.0
    for label, values in groups:
        if len(values) != len(series):
            raise ValueError(f"group {label!r} has {len(values)} values for {len(series)} series")
        bars = []
        for index, value in enumerate(values):
            top = y + index * (BAR_HEIGHT + BAR_GAP)
            text = f"{value:g}{unit}"
            bars.append(Bar(index, series[index], value, text, top, PLOT_WIDTH * value / largest))
        laid.append(Group(label, y, tuple(bars)))
        y += len(series) * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP
    description = "; ".join(
        f"{label}: "
        + ", ".join(f"{name} {value:g}{unit}" for name, value in zip(series, values, strict=True))
        for label, values in groups
    )
    return BarChart(
        title=title,
        description=description or "no figures",
        series=tuple(series),
        groups=tuple(laid),
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height=max(y, BAR_HEIGHT),
    )
