"""The demo app (`depth-anything demo`, app.py): its handlers, the served app through gradio_client, and the page in
a real browser (headless Chromium driven by Playwright).

The served-app tests start `python -m modeling_depth_anything.cli demo` on 127.0.0.1 (a free port) with a tiny
random-weight model; nothing leaves the machine (HF_HUB_OFFLINE, no analytics, no share link). The browser test needs
Debian's Chromium (`apt-get install -y chromium`) and is skipped without it. With DEPTH_ANYTHING_SCREENSHOT=path set,
it saves its screenshot there (docs/demo_screenshot.png is made this way).
"""

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.cli import main
from modeling_depth_anything.inference import VideoWriter, read_ply

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from modeling_depth_anything import demo as demo_module  # noqa: E402  (needs gradio, checked above)
from modeling_depth_anything.demo import DemoError, DepthDemo, handle_image, handle_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "photos" / "dav2__demo08.jpg"  # 640x425
LARGE_PHOTO = ROOT / "assets" / "photos" / "dav2__demo01.jpg"  # 2048x1362
CHROMIUM = Path("/usr/bin/chromium")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}


@pytest.fixture(scope="module")
def app(model_dir, tmp_path_factory):
    return DepthDemo([str(model_dir)], max_frames=3, output_root=tmp_path_factory.mktemp("demo_results"))


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "holiday.jpg"
    path.write_text("this is a text file renamed .jpg\n")
    return path


def _cli_outputs(model_dir, image, output, *extra) -> Path:
    """Run `depth-anything predict IMAGE --formats png16 npy ply` in-process; returns the output folder."""
    code = main(["predict", str(image), "--model", str(model_dir), "--output", str(output), "--quiet",
                 "--formats", "png16", "npy", "ply", *extra])
    assert code == 0
    return output


# --------------------------------------------------------------------------------------------------------------------
# Handlers


def test_image_files_are_the_clis(app, model_dir, tmp_path):
    result = app.predict_image(str(PHOTO), downloads=["png16", "npy", "grey", "ply"])
    names = [path.name for path in result.files]
    assert names == ["dav2__demo08_depth16.png", "dav2__demo08_depth.npy", "dav2__demo08_depth_grey.png",
                     "dav2__demo08.ply", "dav2__demo08_depth.png"]
    cli = _cli_outputs(model_dir, PHOTO, tmp_path / "cli")
    for name in ("dav2__demo08_depth16.png", "dav2__demo08_depth.npy", "dav2__demo08.ply"):
        assert (cli / name).read_bytes() == next(p for p in result.files if p.name == name).read_bytes(), name
    png16 = np.asarray(Image.open(result.files[0]))
    assert png16.dtype == np.uint16 and png16.shape == (425, 640)
    grey = Image.open(result.files[2])
    assert grey.mode == "L" and grey.size == (640, 425)
    assert np.asarray(grey).max() == 255  # white = near, over the robust range
    # the colour and grey maps: the pixels of `predict --formats color` (--cmap gray), other PNG compression
    for cmap, ours, channels in (("Spectral_r", result.files[4], slice(None)), ("gray", result.files[2], 0)):
        assert main(["predict", str(PHOTO), "--model", str(model_dir), "--output", str(tmp_path / cmap), "--quiet",
                     "--formats", "color", "--cmap", cmap]) == 0
        expected = np.asarray(Image.open(tmp_path / cmap / "dav2__demo08_depth.png"))[..., channels]
        np.testing.assert_array_equal(np.asarray(Image.open(ours)), expected)
    assert Image.open(result.input_image).size == Image.open(result.depth_image).size == (640, 425)
    assert "640×425" in result.info and " ms" in result.info and "relative disparity" in result.info


def test_focal_length_and_download_choice(app, model_dir, tmp_path):
    result = app.predict_image(str(PHOTO), cmap="magma", focal_length=40, downloads=["ply"])
    assert [path.name for path in result.files] == ["dav2__demo08.ply", "dav2__demo08_depth.png"]
    cli = _cli_outputs(model_dir, PHOTO, tmp_path / "cli", "--focal-length", "40")
    assert result.files[0].read_bytes() == (cli / "dav2__demo08.ply").read_bytes()
    points, _ = read_ply(result.files[0])
    assert len(points) == 640 * 425
    with pytest.raises(DemoError, match="focal length must be a positive number"):
        app.predict_image(str(PHOTO), focal_length=-3)


def test_raw_upload_payload_and_file_names(app, tmp_path):
    upload = tmp_path / "a1b2c3.jpg"  # Gradio keeps uploads under a hashed folder; orig_name is the user's name
    shutil.copy(PHOTO, upload)
    result = app.predict_image({"path": str(upload), "orig_name": "my holiday (1).jpg"}, downloads=["npy"])
    assert [path.name for path in result.files] == ["my_holiday_1_depth.npy", "my_holiday_1_depth.png"]


def test_unreadable_upload_is_a_message(app, not_an_image):
    payload = {"path": str(not_an_image), "orig_name": "holiday.jpg"}
    with pytest.raises(DemoError, match=r"^holiday.jpg: not a readable image .*Please upload a JPEG") as caught:
        app.predict_image(payload)
    assert str(not_an_image.parent) not in str(caught.value)  # the server's temporary path is not shown
    with pytest.raises(gr.Error, match="holiday.jpg: not a readable image"):
        handle_image(app, payload, app.models[0], "Spectral_r", None)
    empty = not_an_image.with_name("empty.png")
    empty.write_bytes(b"")
    with pytest.raises(DemoError, match="empty.png: the file is empty"):
        app.predict_image(str(empty))


def test_too_small_and_missing_images(app, tmp_path):
    speck = tmp_path / "speck.png"
    Image.fromarray(np.zeros((8, 13, 3), dtype=np.uint8)).save(speck)
    with pytest.raises(DemoError, match=r"speck.png is 13x8 pixels: too small.*at least 14x14"):
        app.predict_image(str(speck))
    with pytest.raises(DemoError, match="Upload a photo first"):
        app.predict_image(None)
    with pytest.raises(DemoError, match="Unknown model"):
        app.predict_image(str(PHOTO), model="other/model")
    with pytest.raises(DemoError, match="Unknown colormap"):
        app.predict_image(str(PHOTO), cmap="nope")


def test_handler_returns_gradio_values(app):
    pair, files, info = handle_image(app, str(PHOTO), app.models[0], "Spectral_r", None, ["png16"])
    assert [Path(path).name for path in pair] == ["dav2__demo08_input.jpg", "dav2__demo08_depth.png"]
    assert [Path(path).name for path in files] == ["dav2__demo08_depth16.png", "dav2__demo08_depth.png"]
    assert "depth in" in info


def test_video_uses_the_frame_limit(app, tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = VideoWriter(clip, fps=4)
    for index in range(5):
        writer.write(np.full((28, 42, 3), 40 * index, dtype=np.uint8))
    writer.close()
    result = app.predict_video(str(clip))
    assert result.frames == 3  # max_frames=3
    assert [path.name for path in result.files] == ["clip_depth.mp4", "clip_side_by_side.mp4"]
    assert all(path.stat().st_size > 0 for path in result.files)
    assert "Only the first 3 of 5 frames" in result.warnings[0]
    assert "limit 3 frames" in result.info
    with pytest.warns(UserWarning, match="Only the first 3 of 5 frames"):  # gr.Warning outside a request
        video, files, info = handle_video(app, str(clip), app.models[0], "Spectral_r")
    assert Path(video).name == "clip_side_by_side.mp4" and len(files) == 2


def test_undecodable_video_is_a_message(app, tmp_path):
    fake = tmp_path / "x.mp4"
    fake.write_text("not a video")
    with pytest.raises(DemoError, match=r"^movie.mp4: not a readable video.*Please upload an MP4"):
        app.predict_video({"path": str(fake), "orig_name": "movie.mp4"})
    with pytest.raises(gr.Error, match="movie.mp4: not a readable video"):
        handle_video(app, {"path": str(fake), "orig_name": "movie.mp4"}, app.models[0], "Spectral_r")


def test_metric_model_is_described_in_metres(tmp_path):
    folder = tmp_path / "metric"
    config = DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DepthAnythingImageProcessor(size=56).save_pretrained(folder)
    metric = DepthDemo([str(folder)], output_root=tmp_path / "results")
    result = metric.predict_image(str(PHOTO), downloads=["png16"])
    assert "metric depth in metres" in result.info


def test_models_from_env(monkeypatch):
    monkeypatch.delenv("DEPTH_ANYTHING_MODEL", raising=False)
    assert demo_module.models_from_env() == ["depth-anything/Depth-Anything-V2-Small-hf"]
    monkeypatch.setenv("DEPTH_ANYTHING_MODEL", "a/b, ./local ,")
    assert demo_module.models_from_env() == ["a/b", "./local"]


def test_cli_demo_arguments(monkeypatch, model_dir, tmp_path, caplog):
    seen = {}

    def fake_launch(models, **kwargs):
        seen.update(models=models, **kwargs)

    monkeypatch.setattr(demo_module, "launch_demo", fake_launch)
    assert main(["demo", "--model", "a", "--model", "b/c", "--port", "7999", "--max-frames", "9"]) == 0
    assert seen["models"] == ["a", "b/c"] and seen["port"] == 7999 and seen["max_frames"] == 9
    assert seen["host"] == "127.0.0.1"
    monkeypatch.setenv("DEPTH_ANYTHING_MODEL", str(model_dir))
    assert main(["demo"]) == 0
    assert seen["models"] == [str(model_dir)]
    assert main(["demo", "--port", "0"]) == 2
    assert "--port must be positive" in caplog.text


def test_cli_demo_unknown_model(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["demo", "--model", str(tmp_path / "no-model")]) == 2
    assert "no-model: model folder not found" in caplog.text


def test_page_layout(app):
    page = demo_module.build_demo(app, examples=[PHOTO])
    config = page.get_config_file()
    api_names = {dependency.get("api_name") for dependency in config["dependencies"]}
    assert {"predict", "predict_video"} <= api_names
    kinds = {component["type"] for component in config["components"]}
    assert {"image", "imageslider", "dropdown", "number", "checkboxgroup", "file", "video", "dataset"} <= kinds


# --------------------------------------------------------------------------------------------------------------------
# The served app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`depth-anything demo --model TINY --port FREE` in a subprocess; yields its URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, **OFFLINE_ENV, "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "modeling_depth_anything.cli", "demo", "--model", str(model_dir), "--port",
             str(port), "--max-frames", "3"], stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo server exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory, monkeypatch_module):
    from gradio_client import Client

    for name, value in OFFLINE_ENV.items():
        monkeypatch_module.setenv(name, value)
    return Client(server, verbose=False, analytics_enabled=False, download_files=str(tmp_path_factory.mktemp("dl")))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_served_app_matches_the_cli(client, model_dir, tmp_path):
    from gradio_client import handle_file

    start = time.perf_counter()
    pair, files, info = client.predict(handle_file(str(PHOTO)), str(model_dir), "Spectral_r", None,
                                       ["png16", "npy", "grey"], api_name="/predict")
    seconds = time.perf_counter() - start
    logging.getLogger(__name__).info("gradio_client call: %.2f s (%s)", seconds, info)
    assert [Path(path).name for path in pair] == ["dav2__demo08_input.jpg", "dav2__demo08_depth.png"]
    files = {Path(path).name: Path(path) for path in files}
    png16 = np.asarray(Image.open(files["dav2__demo08_depth16.png"]))
    assert png16.dtype == np.uint16 and png16.shape == (425, 640)
    cli = _cli_outputs(model_dir, PHOTO, tmp_path / "cli")
    np.testing.assert_array_equal(np.load(files["dav2__demo08_depth.npy"]),
                                  np.load(cli / "dav2__demo08_depth.npy"))
    assert "depth in" in info and " ms" in info


def test_served_app_reports_bad_uploads_and_keeps_serving(client, model_dir, not_an_image, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"holiday.jpg: not a readable image .*Please upload"):
        client.predict(handle_file(str(not_an_image)), str(model_dir), "Spectral_r", None, ["npy"],
                       api_name="/predict")
    fake_video = tmp_path / "movie.mp4"
    fake_video.write_text("not a video")
    with pytest.raises(AppError, match="movie.mp4: not a readable video"):
        client.predict(handle_file(str(fake_video)), str(model_dir), "Spectral_r", api_name="/predict_video")
    _, files, _ = client.predict(handle_file(str(PHOTO)), str(model_dir), "Spectral_r", None, ["npy"],
                                 api_name="/predict")
    assert [Path(path).name for path in files] == ["dav2__demo08_depth.npy", "dav2__demo08_depth.png"]


# --------------------------------------------------------------------------------------------------------------------
# The page in a browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's Chromium: apt-get install -y chromium")
def test_browser_upload_shows_depth(server, not_an_image, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
    screenshot = Path(os.environ.get("DEPTH_ANYTHING_SCREENSHOT") or tmp_path / "demo_screenshot.png")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        try:
            page.goto(server)
            upload = page.locator("#input-image input[type=file]")

            # A text file renamed .jpg: a message on the page, no result.
            upload.set_input_files(str(not_an_image))
            page.locator("#input-image img[src*='holiday']").wait_for(state="attached")  # uploaded
            page.click("#run-image")
            toast = page.locator(".toast-body", has_text="holiday.jpg: not a readable image")
            toast.wait_for()
            assert "Traceback" not in page.content()

            # The next request succeeds: a shipped photo gives the slider's two images, the latency and downloads.
            page.locator("#input-image button[aria-label='Remove Image']").click()
            upload.set_input_files(str(PHOTO))
            page.wait_for_function(  # uploaded and shown
                "[...document.querySelectorAll('#input-image img')].some(img => img.complete && img.naturalWidth)"
            )
            page.click("#run-image")
            page.locator("#image-files td[aria-label='dav2__demo08_depth16.png']").wait_for()
            page.wait_for_function("document.querySelector('#image-info').innerText.includes(' ms')")
            images = page.locator("#depth-slider img")
            assert images.count() == 2
            page.wait_for_function(
                "[...document.querySelectorAll('#depth-slider img')].every(img => img.complete && img.naturalWidth)"
            )
            assert "640×425" in page.inner_text("#image-info")
            for close in page.locator(".toast-body button").all():  # the earlier message, out of the picture
                close.click()
            page.locator(".toast-body").first.wait_for(state="detached")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        except Exception as error:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise AssertionError(f"{error}\nthe page at failure: {tmp_path / 'failure.png'}") from None
        finally:
            browser.close()
    assert Image.open(screenshot).size[0] == 1280
