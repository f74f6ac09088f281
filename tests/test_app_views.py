import numpy as np
import pytest
from fakes import LineFit

from app.views import CurvesWidget, HeatmapWidget, ScatterWidget, create_view_widget
from app.views.curves import moving_average, smooth
from app.views.heatmap import corner_shares
from core.runner import Runner
from core.views import Curves, Heatmap, Reference, Scatter, Series


@pytest.fixture(scope="module")
def snapshot():
    runner = Runner(LineFit, {"lr": 0.1}, eval_every=10)
    runner.run(120)
    return runner.snapshot(refresh_views=True)


def test_factory_picks_one_widget_class_per_view_type(qtbot, snapshot):
    widgets = [create_view_widget(view) for view in snapshot.views]
    for widget in widgets:
        qtbot.addWidget(widget)
    assert [type(w) for w in widgets] == [CurvesWidget, CurvesWidget, HeatmapWidget, ScatterWidget]
    assert [w.key for w in widgets] == [v.key for v in snapshot.views]

    with pytest.raises(TypeError, match="no widget draws"):
        create_view_widget(Reference("x", 1.0))


def test_curves_draw_every_series_with_toggles(qtbot, snapshot):
    view = snapshot.views[1]  # parameter errors: two series
    widget = CurvesWidget(view)
    qtbot.addWidget(widget)
    assert set(widget._raw) == {"error_a", "error_b"}
    x, y = widget._raw["error_a"].getData()
    assert np.array_equal(x, view.series[0].x)
    assert not widget._smooth["error_a"].isVisible()

    widget.smooth_box.setChecked(True)
    assert widget._smooth["error_a"].isVisible()
    widget.log_box.setChecked(True)
    assert widget.plot.getAxis("left").logMode


def test_reference_lines_follow_the_log_axis(qtbot):
    series = Series("nll", np.arange(1, 50), np.linspace(10.0, 1.0, 49))
    view = Curves("nll", "Test NLL", (series,), references=(Reference("true", 0.5),))
    widget = CurvesWidget(view)
    qtbot.addWidget(widget)
    (line,) = widget._reference_lines
    assert line.value() == pytest.approx(0.5)
    widget.log_box.setChecked(True)
    assert line.value() == pytest.approx(np.log10(0.5))


def test_moving_average_keeps_length_and_mean():
    y = np.array([0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0])
    smoothed = moving_average(y, 1)
    assert len(smoothed) == len(y)
    assert smoothed[0] == pytest.approx(5.0)
    assert smoothed[3] == pytest.approx(10 / 3)
    # A falling loss smoothed on a log axis stays positive and falling.
    loss = np.geomspace(10, 0.01, 500)
    assert np.all(np.diff(smooth(loss, log_scale=True)) <= 0)


def test_heatmap_on_its_extent_and_levels(qtbot):
    values = np.outer(np.linspace(0, 1, 20), np.ones(30))
    points = np.random.default_rng(0).normal(size=(5000, 2))
    view = Heatmap("density", "Density", values, (-4.0, 4.0, -2.0, 2.0), (0.0, 2.0), points=points)
    widget = HeatmapWidget(view)
    qtbot.addWidget(widget)
    assert widget.colorbar.levels() == (0.0, 2.0)
    assert tuple(widget.image.getLevels()) == (0.0, 2.0)
    rect = widget.image.mapRectToParent(widget.image.boundingRect())
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == (-4.0, 4.0, -2.0, 2.0)
    assert 0 < len(widget.points.data) <= 2000  # thinned


@pytest.mark.parametrize("size", [(700, 300), (300, 700)], ids=["wide", "tall"])
def test_heatmap_box_keeps_the_fields_aspect_and_shows_it_whole(qtbot, size):
    # A field 8 wide and 4 tall in a widget of another shape: the canvas margins take up the
    # difference, so the box has the field's aspect and its range is the extent, no more
    values = np.outer(np.linspace(0, 1, 20), np.ones(40))
    widget = HeatmapWidget(Heatmap("density", "Density", values, (-4.0, 4.0, -2.0, 2.0), (0, 1)))
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)

    def fitted():
        box = widget.plot.vb.boundingRect()
        return abs(box.width() - 2 * box.height()) < 2

    qtbot.waitUntil(fitted)
    box = widget.plot.vb.boundingRect()
    assert box.width() > 100 and box.height() > 50
    (x_min, x_max), (y_min, y_max) = widget.plot.vb.viewRange()
    assert (x_min, x_max) == pytest.approx((-4, 4), abs=0.05)
    assert (y_min, y_max) == pytest.approx((-2, 2), abs=0.05)


def test_heatmap_legend_sits_in_the_emptiest_corner(qtbot):
    # A field with mass in its top-left corner and points in its bottom right: the legend
    # of the points goes to the top right, and is drawn there.
    values = np.zeros((40, 40))
    values[30:, :10] = 1.0  # rows run bottom to top: these are the top-left cells
    points = np.column_stack([np.full(50, 3.5), np.full(50, -3.5)])
    extent = (-4.0, 4.0, -4.0, 4.0)
    view = Heatmap("learned", "q", values, extent, (0, 1), points=points, points_label="q")
    widget = HeatmapWidget(view)
    qtbot.addWidget(widget)
    widget.resize(500, 500)
    widget.show()
    qtbot.waitExposed(widget)

    # Patches of 6 × 16 cells: 60 of the 100 cells of mass lie under the top-left one
    shares = corner_shares(view)
    assert shares == pytest.approx(
        {"top left": 0.6, "top right": 0.0, "bottom left": 0.0, "bottom right": 1.0}
    )
    assert widget.legend_corner == "top right"

    def on_the_right():
        box = widget.plot.vb.sceneBoundingRect()
        return widget.legend.sceneBoundingRect().left() > box.center().x()

    qtbot.waitUntil(on_the_right)
    box, legend = widget.plot.vb.sceneBoundingRect(), widget.legend.sceneBoundingRect()
    assert box.contains(legend)
    assert legend.bottom() < box.center().y()

    # A corner only a little emptier than the legend's own does not move it; a clearly
    # emptier one does.
    def field(top_left):
        values = np.ones((40, 40))
        values[-6:, :16] = top_left
        return Heatmap(
            "learned", "q", values, extent, (0, 1), points=np.zeros((1, 2)), points_label="q"
        )

    widget.set_view(field(0.95))
    assert widget.legend_corner == "top right"
    widget.set_view(field(0.0))
    assert widget.legend_corner == "top left"


def test_scatter_groups_with_legend(qtbot):
    points = np.arange(20, dtype=float).reshape(10, 2)
    groups = np.array([0, 1] * 5)
    view = Scatter("s", "Samples", points, groups=groups, group_labels=("a", "b"))
    widget = ScatterWidget(view)
    qtbot.addWidget(widget)
    assert [len(item.data) for item in widget._groups] == [5, 5]
    assert widget.legend.isVisible()


def test_a_new_runs_view_retitles_the_widget_it_reuses(qtbot):
    values = np.ones((4, 4))
    first = Heatmap("target", "Target: U1", values, (-4.0, 4.0, -4.0, 4.0), (0.0, 1.0))
    widget = HeatmapWidget(first)
    qtbot.addWidget(widget)
    assert widget.plot.titleLabel.text == "Target: U1"

    second = Heatmap(
        "target",
        "Target: U3",
        values,
        first.extent,
        first.levels,
        x_label="x₁",
        points=np.zeros((3, 2)),
        points_label="samples",
    )
    widget.set_view(second)
    assert widget.plot.titleLabel.text == "Target: U3"
    assert widget.plot.getAxis("bottom").labelText == "x₁"
    assert [label.text for _, label in widget.legend.items] == ["samples"]

    series = Series("loss", np.arange(3), np.ones(3))
    curves = CurvesWidget(Curves("loss", "Training loss", (series,)))
    qtbot.addWidget(curves)
    curves.set_view(Curves("loss", "Training NLL", (series,), y_label="nats"))
    assert curves.plot.titleLabel.text == "Training NLL"
    assert curves.plot.getAxis("left").labelText == "nats"
