"""Controls built from declared parameters, the same way for every experiment.

Each :class:`~core.params.Param` kind gets one control: a number on a slider (on a log scale
when the parameter says so) with its value beside it, or a spin box when the range is too wide
for a slider; a choice in a combo box; a switch as a check box. :class:`ParamControls` lays them
out and announces a changed configuration once the hand has rested for a moment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider, QLargeIntSpinBox
from superqt.utils import QSignalDebouncer, signals_blocked

from core.params import BoolParam, ChoiceParam, FloatParam, IntParam, Param

#: Integer ranges wider than this get a spin box: a slider could not pick single values.
MAX_SLIDER_SPAN = 1000
#: Positions of a log-scale slider.
LOG_SLIDER_POSITIONS = 240
#: Rest of the hand, in milliseconds, before a changed setting starts a new run.
DEBOUNCE_MS = 400
_INT32_MAX = 2**31 - 1


def tooltip(param: Param) -> str:
    """Return a control's tooltip: what the parameter does and which values it takes."""
    allowed = param.describe()
    return f"{param.help}\n({allowed})" if param.help else allowed.capitalize()


class ParamControl(QWidget):
    """Edits one parameter's value; emits :attr:`valueChanged` with each new valid value."""

    valueChanged = Signal(object)

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.setToolTip(tooltip(param))
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def value(self) -> Any:
        """Return the current value, valid for the parameter."""
        raise NotImplementedError

    def setValue(self, value: Any) -> None:  # noqa: N802 (Qt's name, as on every Qt control)
        """Show ``value``; emits :attr:`valueChanged` if it differs, as a user's edit would."""
        raise NotImplementedError

    def _emit(self, *_: Any) -> None:
        self.valueChanged.emit(self.value())


class LinearSliderControl(ParamControl):
    """A slider with an editable value label, for a float or a narrow integer range."""

    def __init__(self, param: FloatParam | IntParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        if isinstance(param, FloatParam):
            self.slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
            # Enough decimals to show a hundredth of the range.
            self._decimals = max(0, math.ceil(-math.log10((param.high - param.low) / 100)))
            self.slider.setDecimals(self._decimals)
        else:
            self.slider = QLabeledSlider(Qt.Orientation.Horizontal)
            self._decimals = None
        self.slider.setRange(param.low, param.high)
        self.slider.setValue(param.default)
        self.slider.valueChanged.connect(self._emit)
        self._layout.addWidget(self.slider)

    def value(self) -> float | int:
        raw = self.slider.value()
        if self._decimals is None:
            return int(raw)
        return self.param.validate(round(float(raw), self._decimals))

    def setValue(self, value: float | int) -> None:  # noqa: N802
        self.slider.setValue(self.param.validate(value))


class LogSliderControl(ParamControl):
    """A slider whose positions are spaced geometrically, with the value shown beside it.

    superqt's labelled sliders are linear; a learning rate from 1e-4 to 1 needs equal room for
    each decade.
    """

    def __init__(self, param: FloatParam | IntParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, LOG_SLIDER_POSITIONS)
        self.slider.setPageStep(LOG_SLIDER_POSITIONS // 12)
        self.label = QLabel()
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("0.000e-00"))
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._value = param.default
        self.slider.setValue(self._position(param.default))
        self.label.setText(param.format(param.default))
        self.slider.valueChanged.connect(self._on_position)
        self._layout.addWidget(self.slider, stretch=1)
        self._layout.addWidget(self.label)

    def value(self) -> float | int:
        return self._value

    def setValue(self, value: float | int) -> None:  # noqa: N802
        value = self.param.validate(value)
        with signals_blocked(self.slider):
            self.slider.setValue(self._position(value))
        self._show(value)

    def _position(self, value: float) -> int:
        low, high = math.log(self.param.low), math.log(self.param.high)
        return round((math.log(value) - low) / (high - low) * LOG_SLIDER_POSITIONS)

    def _at(self, position: int) -> float | int:
        low, high = math.log(self.param.low), math.log(self.param.high)
        value = math.exp(low + (high - low) * position / LOG_SLIDER_POSITIONS)
        if isinstance(self.param, IntParam):
            return self.param.validate(round(value))
        # Three significant digits: what the label shows is what the run gets.
        value = float(f"{value:.3g}")
        return min(max(value, self.param.low), self.param.high)

    def _on_position(self, position: int) -> None:
        self._show(self._at(position))

    def _show(self, value: float | int) -> None:
        self.label.setText(self.param.format(value))
        if value != self._value:
            self._value = value
            self._emit()


class SpinBoxControl(ParamControl):
    """A spin box, for integers whose range is too wide for a slider (such as a seed)."""

    def __init__(self, param: IntParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        fits_int32 = -_INT32_MAX - 1 <= param.low and param.high <= _INT32_MAX
        self.spin = QSpinBox() if fits_int32 else QLargeIntSpinBox()
        self.spin.setRange(param.low, param.high)
        self.spin.setValue(param.default)
        self.spin.setKeyboardTracking(False)  # one run per typed number, not per digit
        self.spin.valueChanged.connect(self._emit)
        self._layout.addWidget(self.spin)

    def value(self) -> int:
        return int(self.spin.value())

    def setValue(self, value: int) -> None:  # noqa: N802
        self.spin.setValue(self.param.validate(value))


class ChoiceControl(ParamControl):
    """A combo box of the parameter's choices."""

    def __init__(self, param: ChoiceParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.combo = QComboBox()
        self.combo.addItems(list(param.choices))
        self.combo.setCurrentText(param.default)
        self.combo.currentTextChanged.connect(self._emit)
        self._layout.addWidget(self.combo)

    def value(self) -> str:
        return self.combo.currentText()

    def setValue(self, value: str) -> None:  # noqa: N802
        self.combo.setCurrentText(self.param.validate(value))


class SwitchControl(ParamControl):
    """A check box for an on/off parameter."""

    def __init__(self, param: BoolParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.box = QCheckBox()
        self.box.setChecked(param.default)
        self.box.toggled.connect(self._emit)
        self._layout.addWidget(self.box)

    def value(self) -> bool:
        return self.box.isChecked()

    def setValue(self, value: bool) -> None:  # noqa: N802
        self.box.setChecked(self.param.validate(value))


def create_control(param: Param, parent: QWidget | None = None) -> ParamControl:
    """Return the control for ``param``'s kind; raise ``TypeError`` for an unknown kind."""
    if isinstance(param, FloatParam | IntParam) and param.log:
        return LogSliderControl(param, parent)
    if isinstance(param, FloatParam):
        return LinearSliderControl(param, parent)
    if isinstance(param, IntParam):
        if param.high - param.low > MAX_SLIDER_SPAN:
            return SpinBoxControl(param, parent)
        return LinearSliderControl(param, parent)
    if isinstance(param, ChoiceParam):
        return ChoiceControl(param, parent)
    if isinstance(param, BoolParam):
        return SwitchControl(param, parent)
    raise TypeError(f"no control for {type(param).__name__} {param.name!r}")


class ParamControls(QWidget):
    """A form with one control per declared parameter.

    :attr:`configChanged` carries the whole configuration once no control has moved for
    ``debounce_ms`` milliseconds, and only if it differs from the last one announced (or set).
    """

    configChanged = Signal(dict)

    def __init__(
        self,
        params: Sequence[Param],
        values: Mapping[str, Any] | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controls: dict[str, ParamControl] = {}
        self._debouncer = QSignalDebouncer(parent=self)
        self._debouncer.setTimeout(debounce_ms)
        self._debouncer.triggered.connect(self._announce)

        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        for param in params:
            control = create_control(param)
            control.valueChanged.connect(self._debouncer.throttle)
            label = QLabel(param.label)
            label.setToolTip(control.toolTip())
            label.setBuddy(control)
            form.addRow(label, control)
            self.controls[param.name] = control

        if values:
            self.set_values(values)
        self._announced = self.values()

    def values(self) -> dict[str, Any]:
        """Return the configuration the controls show."""
        return {name: control.value() for name, control in self.controls.items()}

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show ``values`` (names not given keep theirs) without announcing a change."""
        for name, value in values.items():
            control = self.controls[name]
            with signals_blocked(control):
                control.setValue(value)
        self._debouncer.cancel()
        self._announced = self.values()

    def _announce(self) -> None:
        config = self.values()
        if config != self._announced:
            self._announced = config
            self.configChanged.emit(config)
