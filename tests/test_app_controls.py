import math

import pytest
from fakes import LineFit

from app.controls import (
    ChoiceControl,
    LinearSliderControl,
    LogSliderControl,
    ParamControls,
    SpinBoxControl,
    SwitchControl,
    create_control,
)
from core.params import FloatParam, IntParam


@pytest.fixture
def panel(qtbot):
    panel = ParamControls(LineFit.params(), debounce_ms=50)
    qtbot.addWidget(panel)
    return panel


def test_one_control_per_parameter_kind(panel):
    kinds = {name: type(control) for name, control in panel.controls.items()}
    assert kinds == {
        "lr": LogSliderControl,
        "noise": LinearSliderControl,
        "points": LinearSliderControl,
        "optimizer": ChoiceControl,
        "center": SwitchControl,
        "diverge_at": SpinBoxControl,
        "seed": SpinBoxControl,
        "device": ChoiceControl,
    }
    assert panel.values() == {p.name: p.default for p in LineFit.params()}
    assert "Step size." in panel.controls["lr"].toolTip()
    assert "log scale" in panel.controls["lr"].toolTip()


def test_log_slider_spaces_decades_evenly(qtbot):
    param = FloatParam("lr", "Learning rate", 1e-2, "Step size.", low=1e-4, high=1.0, log=True)
    control = create_control(param)
    qtbot.addWidget(control)
    positions = control.slider.maximum()

    control.slider.setValue(0)
    assert control.value() == pytest.approx(1e-4)
    control.slider.setValue(positions // 2)
    assert control.value() == pytest.approx(1e-2)
    control.slider.setValue(positions)
    assert control.value() == pytest.approx(1.0)

    control.setValue(1e-3)
    assert control.slider.value() == round(positions / 4)
    assert control.label.text() == "0.001"


def test_log_int_slider_gives_integers(qtbot):
    param = IntParam("hidden", "Hidden units", 64, "Width.", low=4, high=1024, log=True)
    control = create_control(param)
    qtbot.addWidget(control)
    for position in range(0, control.slider.maximum() + 1, 7):
        control.slider.setValue(position)
        assert isinstance(control.value(), int)
        assert 4 <= control.value() <= 1024
    control.setValue(64)
    assert control.value() == 64
    assert math.isclose(control.slider.value() / control.slider.maximum(), math.log(16, 256))


def test_float_slider_rounds_to_what_its_label_shows(panel):
    panel.controls["noise"].slider.setValue(0.123456)
    assert panel.controls["noise"].value() == 0.12


def test_settled_changes_announce_one_config(qtbot, panel):
    with qtbot.waitSignal(panel.configChanged, timeout=2000) as blocker:
        panel.controls["lr"].setValue(0.2)
        panel.controls["optimizer"].setValue("adam")
        panel.controls["points"].setValue(100)
    config = blocker.args[0]
    assert config["lr"] == 0.2 and config["optimizer"] == "adam" and config["points"] == 100

    # Moving away and back before the hand rests announces nothing.
    with qtbot.assertNotEmitted(panel.configChanged, wait=200):
        panel.controls["lr"].setValue(0.5)
        panel.controls["lr"].setValue(0.2)


def test_set_values_does_not_announce(qtbot, panel):
    with qtbot.assertNotEmitted(panel.configChanged, wait=200):
        panel.set_values({"lr": 0.3, "center": True, "seed": 12345})
    assert panel.values()["lr"] == 0.3
    assert panel.values()["center"] is True
    assert panel.values()["seed"] == 12345
