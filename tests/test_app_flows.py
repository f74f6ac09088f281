"""The window on the real flow experiment: controls from its parameters, live density views."""

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.main_window import MainWindow
from app.views import CurvesWidget, HeatmapWidget
from core.flows.experiment import FlowExperiment


def image_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width(), :3]


@pytest.fixture
def window(qtbot):
    window = MainWindow({"flows": FlowExperiment})
    qtbot.addWidget(window)
    window.resize(1400, 880)
    window.show()
    qtbot.waitUntil(lambda: window.drawn is not None, timeout=20_000)
    return window


def test_controls_are_the_declared_parameters(window):
    assert list(window.controls.controls) == [p.name for p in FlowExperiment.params()]
    assert window.controls.controls["lr"].value() == 5e-3
    assert window.controls.controls["target"].combo.count() == 9


def test_training_on_u3_draws_both_densities_on_one_scale(qtbot, window):
    window.controls.set_values({"target": "U3"})
    window.reset()
    qtbot.waitUntil(lambda: window.drawn.config["target"] == "U3", timeout=20_000)
    window.session.train()
    qtbot.waitUntil(lambda: window.drawn.step >= 150, timeout=60_000)

    widgets = {w.key: w for w in window.view_area.widgets()}
    assert set(widgets) == {"loss", "kl", "target", "learned"}
    assert isinstance(widgets["kl"], CurvesWidget) and isinstance(widgets["target"], HeatmapWidget)
    target, learned = widgets["target"], widgets["learned"]
    assert target.colorbar.levels() == learned.colorbar.levels()
    assert target.image.image.shape == learned.image.image.shape == (100, 100)
    assert learned.points.data.size > 100  # samples of q over the learned density

    # The KL curve has its evaluations; the status bar names the metric.
    kl_x, kl_y = widgets["kl"]._raw["kl"].getData()
    assert len(kl_x) >= 2 and kl_y[-1] < kl_y[0]
    assert "kl " in window.run_label.text()

    # On screen, each density shows structure, not a flat colour.
    for widget in (target, learned):
        pixels = image_array(widget.canvas.grab().toImage()).astype(float)
        assert pixels.std() > 20
