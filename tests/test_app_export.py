import asyncio
import csv
import json
import xml.etree.ElementTree as ET

import pytest
import qasync
from fakes import LineFit
from PySide6.QtGui import QImage

import app.export
from app.export import write_view_images
from app.main_window import MainWindow
from core.runner import Runner

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def loop(qapp):
    """The app's asyncio loop (qasync's, run by Qt's event loop) for the asynchronous export."""
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def run(loop, coroutine, timeout=10.0):
    """Run Qt's and asyncio's loop until ``coroutine`` is done, as the app does."""
    return loop.run_until_complete(asyncio.wait_for(coroutine, timeout))


async def next_emission(signal):
    """Wait for the next emission of a Qt signal inside the asyncio loop."""
    future = asyncio.get_running_loop().create_future()

    def settle(*args):
        if not future.done():
            future.set_result(args)

    signal.connect(settle)
    try:
        return await future
    finally:
        signal.disconnect(settle)


@pytest.fixture
def trained(qtbot):
    window = MainWindow({"linefit": LineFit})
    qtbot.addWidget(window)
    window.show()
    window.session.train()
    qtbot.waitUntil(lambda: window.drawn is not None and window.drawn.step > 300, timeout=10_000)
    window.session.pause()
    qtbot.waitUntil(lambda: window.session.settled and window.drawn is window.session.latest)
    return window


def check_png(path):
    image = QImage(str(path))
    assert not image.isNull(), path
    assert image.width() >= 300 and image.height() >= 200
    pixels = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(pixels) > 10, f"{path} is nearly blank"


def check_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    drawn = [e for e in root.iter() if e.tag in {f"{SVG}path", f"{SVG}polyline", f"{SVG}image"}]
    assert len(drawn) > 5, path
    assert any(e.tag == f"{SVG}text" for e in root.iter()), "an SVG without labels"


def test_export_writes_every_view_curves_and_config(loop, trained, tmp_path):
    window = trained
    snapshot = window.drawn
    folder = tmp_path / "export"
    paths = run(loop, window.export_to(folder))

    keys = [view.key for view in snapshot.views]
    expected = {f"{k}.{fmt}" for k in keys for fmt in ("png", "svg")} | {
        "metrics.csv",
        "config.json",
    }
    assert {p.name for p in paths} == expected
    assert {p.name for p in folder.iterdir()} == expected
    for key in keys:
        check_png(folder / f"{key}.png")
        check_svg(folder / f"{key}.svg")

    # The curves are the snapshot's own history, row for row.
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = snapshot.history.rows()
    assert rows[0] == header
    assert header[:2] == ["step", "seconds"] and "loss" in header
    assert len(rows) - 1 == len(body) == len(snapshot.history)
    loss = header.index("loss")
    for written, row in zip(rows[1:], body, strict=True):
        assert int(written[0]) == row[0]
        assert written[loss] == "" or float(written[loss]) == pytest.approx(row[loss])

    assert json.loads((folder / "config.json").read_text()) == {
        "experiment": "linefit",
        **snapshot.config,
    }
    assert "Exported" in window.statusBar().currentMessage()


def test_quick_export_goes_to_a_new_dated_folder(loop, trained, tmp_path, monkeypatch):
    monkeypatch.setattr(app.export, "default_export_root", lambda: tmp_path / "exports")

    async def export():
        finished = next_emission(trained.exportFinished)
        trained.export_action.trigger()
        return await finished

    (folder,) = run(loop, export())
    assert folder.parent == tmp_path / "exports"
    assert folder.name.startswith("linefit-")
    assert (folder / "config.json").exists()
    assert str(folder) in trained.statusBar().currentMessage()


def test_export_to_a_chosen_folder(loop, trained, tmp_path):
    dialog = trained.ask_export()
    assert dialog.isVisible()
    dialog.selectFile(str(tmp_path))

    async def export():
        finished = next_emission(trained.exportFinished)
        dialog.accept()
        return await finished

    assert run(loop, export()) == (tmp_path,)
    assert (tmp_path / "loss.svg").exists()


def test_a_bad_folder_is_refused_with_the_reason(loop, trained, tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    assert run(loop, trained.export_to(file)) == []
    assert "it is a file, not a folder" in trained.statusBar().currentMessage()

    assert run(loop, trained.export_to(file / "below")) == []
    assert "Not a directory" in trained.statusBar().currentMessage()


def test_headless_images_use_the_same_widgets(tmp_path):
    runner = Runner(LineFit, {"lr": 0.1})
    runner.run(50)
    views = runner.snapshot(refresh_views=True).views
    paths = write_view_images(views, tmp_path, formats=("png", "svg"))
    assert [p.name for p in paths] == [f"{v.key}.{fmt}" for v in views for fmt in ("png", "svg")]
    for view in views:
        check_png(tmp_path / f"{view.key}.png")
        check_svg(tmp_path / f"{view.key}.svg")

    with pytest.raises(ValueError, match="unknown image format"):
        write_view_images(views, tmp_path, formats=("gif",))
