import pytest

from core.params import BoolParam, ChoiceParam, FloatParam, IntParam, ParamError, resolve

LR = FloatParam("lr", "Learning rate", 1e-3, low=1e-5, high=0.1, log=True)
LAYERS = IntParam("layers", "Layers", 2, low=1, high=8)
FLOW = ChoiceParam("flow", "Flow", "dsf", choices=("dsf", "ddsf", "affine"))
ANNEAL = BoolParam("anneal", "Anneal", False)


@pytest.mark.parametrize(
    ("param", "text", "value"),
    [
        (LR, "0.003", 0.003),
        (LR, "1e-5", 1e-5),
        (LAYERS, " 8 ", 8),
        (FLOW, "ddsf", "ddsf"),
        (ANNEAL, "yes", True),
        (ANNEAL, "Off", False),
    ],
)
def test_parse_accepts_valid_text(param, text, value):
    assert param.parse(text) == value


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (LR, "0.5", r"lr: '0.5' is out of range; expected a number from 1e-05 to 0.1, log scale"),
        (LR, "nan", "out of range"),
        (LR, "fast", "is not a number"),
        (LR, True, "is not a number"),
        (LAYERS, "9", "expected an integer from 1 to 8"),
        (LAYERS, "2.5", "is not an integer"),
        (LAYERS, 2.5, "is not an integer"),
        (FLOW, "realnvp", "expected one of dsf, ddsf, affine"),
        (ANNEAL, "maybe", "is not a switch value"),
    ],
)
def test_bad_values_name_the_valid_range(param, value, message):
    with pytest.raises(ParamError, match=message):
        param.validate(value)


def test_resolve_fills_defaults_and_refuses_unknown_names():
    params = (LR, LAYERS, FLOW, ANNEAL)
    assert resolve(params, {"layers": 3}) == {
        "lr": 1e-3,
        "layers": 3,
        "flow": "dsf",
        "anneal": False,
    }
    with pytest.raises(ParamError, match="unknown parameter.*lyers"):
        resolve(params, {"lyers": 3})


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="must be below"):
        FloatParam("x", "x", 1.0, low=2.0, high=1.0)
    with pytest.raises(ValueError, match="log-scale range must be positive"):
        IntParam("x", "x", 1, low=0, high=4, log=True)
    with pytest.raises(ValueError, match="not among the choices"):
        ChoiceParam("x", "x", "c", choices=("a", "b"))
