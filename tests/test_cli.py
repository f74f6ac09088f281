import csv
import json

import pytest
from fakes import LineFit

from core.cli import build_parser, describe_experiments, run_headless

EXPERIMENTS = {"linefit": LineFit}


def parse(*argv):
    return build_parser(EXPERIMENTS).parse_args(list(argv))


def test_options_come_from_the_declared_parameters():
    args = parse("run", "linefit", "--lr", "0.2", "--diverge-at", "7", "--center", "--out", "d")
    assert (args.lr, args.diverge_at, args.center) == (0.2, 7, True)
    assert args.noise is None  # left to the default
    assert parse("run", "linefit", "--diverge_at", "3", "--out", "d").diverge_at == 3


def test_help_lists_parameters_with_ranges(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse("run", "linefit", "--help")
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--lr V" in text
    assert "A number from 0.0001 to 1, log scale; default 0.05." in text
    assert "One of sgd, adam; default sgd." in text
    assert "--center, --no-center" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "3"], "lr: '3' is out of range; expected a number from 0.0001 to 1"),
        (["--optimizer", "lbfgs"], "expected one of sgd, adam"),
        (["--points", "many"], "'many' is not an integer"),
        (["--steps", "0"], "0 must be at least 1"),
    ],
)
def test_bad_values_exit_2_naming_the_range(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        parse("run", "linefit", *argv, "--out", "d")
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_list_names_experiments_and_parameters():
    text = describe_experiments(EXPERIMENTS)
    assert text.startswith("linefit: Line fit (test).")
    assert "--diverge-at" in text and "--seed" in text and "--device" in text


def test_headless_run_writes_config_metrics_summary_and_images(tmp_path):
    written = []

    def write_images(views, folder):
        written.extend(v.key for v in views)
        return []

    status = run_headless(
        LineFit,
        {"lr": 0.3, "seed": 5},
        steps=40,
        out=tmp_path,
        eval_every=15,
        write_images=write_images,
    )
    assert status == 0

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["experiment"] == "linefit" and config["lr"] == 0.3 and config["seed"] == 5

    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "seconds", "error_a", "error_b", "loss"]
    assert [int(r["step"]) for r in rows] == list(range(41))
    assert rows[0]["loss"] == "" and float(rows[15]["error_a"]) >= 0
    assert rows[16]["error_a"] == ""
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["diverged"] is None
    assert summary["loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert summary["error_a"] == pytest.approx(float(rows[-1]["error_a"]))
    assert written == ["loss", "errors", "fit", "data"]


def test_headless_divergence_keeps_files_and_exits_1(tmp_path):
    status = run_headless(LineFit, {"diverge_at": 10}, steps=50, out=tmp_path)
    assert status == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 9
    assert summary["diverged"].startswith("Diverged at step 10: loss is nan")

    # Header, steps 0-9, then the kept state (step 9) evaluated, which the summary reports.
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [*range(10), 9]
    assert rows[-1]["loss"] == "" and float(rows[-1]["error_a"]) >= 0
    assert summary["error_a"] == pytest.approx(float(rows[-1]["error_a"]))


def test_a_folder_that_cannot_be_made_is_refused_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the folder .*file/run: Not a directory"):
        run_headless(LineFit, {}, steps=1, out=blocker / "run")


def test_a_refused_setting_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError, match="lr: 7 is out of range"):
        run_headless(LineFit, {"lr": 7}, steps=1, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_empty_out_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse("run", "linefit", "--out", "")
    assert exit_.value.code == 2
    assert "an empty path names no folder" in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        run_headless(LineFit, {}, steps=1, out=target)
