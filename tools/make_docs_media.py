"""The README's pictures, made from the real pipeline (run it from the final tree before a release):

    python -m tools.make_docs_media            # docs/demo.gif, docs/browser_view.png, docs/camera.png,
                                               # docs/faces3d.jpg, docs/dog3d.jpg

``demo.gif``: 10 s of the built-in demo through the five processes (every dog appears: the faces change
expression), recorded by the display and cut down to a small animation.  ``browser_view.png``: the browser view of
``dogfilter live`` with two streams, in headless Chromium.  ``camera.png``: the browser camera page in headless
Chromium with a fake webcam (the demo scene played as a camera), showing its filtered frames and round trip.
``faces3d.jpg``: real photos (tests/data/faces) through ``dogfilter image --debug``: each face's 3-D fit (the
canonical face where its pose puts it), anchors, the head's axes and angles, from frontal to profile.
``dog3d.jpg``: real photos from frontal to profile, and mouths wide open (Darwin's plates, 1872), each face painted
by the composite's own painter flat (``--render flat``, the row above) and in 3-D (the default, below), the dog its
column's.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import cv2

from dogfilter.commands.run import Pipeline
from dogfilter.common.scene import DemoScene

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_gif(d: Path, out: Path, seconds: float = 10.0) -> None:
    from PIL import Image

    frames = d / "frames"
    p = Pipeline(mode="live", values={"source": ["demo"], "size": "640x480", "fps": 30.0,
                                      "frames": int(30 * seconds), "output": [f"{frames}/"]})
    with p:
        p.wait(timeout=120)
    pics = sorted(frames.glob("*.png"))[::4]  # 7.5 frames/s: small enough to commit, smooth enough to follow
    images = [Image.fromarray(cv2.cvtColor(cv2.resize(cv2.imread(str(f)), (288, 216), interpolation=cv2.INTER_AREA),
                                           cv2.COLOR_BGR2RGB)).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
              for f in pics]
    images[0].save(out, save_all=True, append_images=images[1:], duration=133, loop=0, optimize=True)
    print(f"{out}: {len(images)} frames, {out.stat().st_size // 1024} KiB")


def screenshots(d: Path) -> None:
    from playwright.sync_api import sync_playwright

    clip = d / "camera.y4m"
    scene = DemoScene(640, 480)
    with clip.open("wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for i in range(300):
            f.write(b"FRAME\n" + cv2.cvtColor(scene.render(3 + i / 30), cv2.COLOR_BGR2YUV_I420).tobytes())
    view, cam = free_port(), free_port()
    p = Pipeline(mode="live", n_detect=2, values={"source": ["demo", "demo"], "size": "640x480", "fps": 30.0,
                                                  "http_port": view, "web_port": cam})
    with p, sync_playwright() as pw:
        time.sleep(5)
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
            *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"http://127.0.0.1:{cam}/")
        page.wait_for_function("Number(document.body.dataset.got || 0) > 60", timeout=60000)
        page.screenshot(path=str(DOCS / "camera.png"))
        print(f"{DOCS / 'camera.png'}: round trip p50 {page.evaluate('document.body.dataset.rttP50')} ms")
        view_page = browser.new_page(viewport={"width": 1500, "height": 980})
        view_page.goto(f"http://127.0.0.1:{view}/")
        time.sleep(6)
        view_page.screenshot(path=str(DOCS / "browser_view.png"))
        print(f"{DOCS / 'browser_view.png'}")
        browser.close()


FACES3D = ["astronaut_collins_frontal_smile.jpg", "iss_two_men_laughing.jpg", "iss_frick_threequarter_smile.jpg",
           "iss_wiseman_threequarter_pitch_up.jpg", "cameraman_nearprofile.jpg", "iss_rubins_profile.jpg"]


def faces3d(d: Path, out: Path, tile: int = 420) -> None:
    """Real photos through the product's own command, ``dogfilter image IN OUT --debug``, cut around their faces and
    tiled 3 × 2."""
    import subprocess

    import numpy as np

    faces = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
    tiles = []
    for name in FACES3D:
        dst = d / f"{name}.png"
        subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "image", str(faces / name), str(dst),
                        "--debug"], check=True, timeout=120)
        img = cv2.imread(str(dst))
        h, w = img.shape[:2]
        k = tile / max(h, w)
        small = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((tile, tile, 3), np.uint8)
        y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        tiles.append(canvas)
    grid = np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:])])
    cv2.imwrite(str(out), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])


#: (photo in tests/data/faces, its dog, what the column shows)
DOG3D = (("astronaut_collins_frontal_smile.jpg", "dog", "frontal"),
         ("iss_frick_threequarter_smile.jpg", "dog", "three-quarter"),
         ("iss_wiseman_threequarter_pitch_up.jpg", "dalmatian", "3/4, looking up"),
         ("cameraman_nearprofile.jpg", "sheepdog", "near profile"),
         ("iss_rubins_profile.jpg", "dalmatian", "profile"),
         ("darwin_duchenne_oldman_mouth_open.jpg", "dog", "mouth open"),
         ("darwin_rejlander_infant_mouth_open.jpg", "sheepdog", "mouth open"))
EMOTION_OF = {"dog": "happy", "dalmatian": "sad", "sheepdog": "surprise"}


def dog3d(out: Path, tile: int = 260) -> None:
    """Each photo's largest face through the composite's painter, flat and in 3-D (its reactions as a still's),
    cut around the head: a 2-row grid, flat above."""
    import numpy as np

    from dogfilter.common.vision import dog3d as rig3d
    from dogfilter.common.vision import masks
    from dogfilter.common.vision.detectors import BlazeFaceDetector

    faces_dir = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
    det = BlazeFaceDetector(min_face=20.0)
    rows: dict[str, list[np.ndarray]] = {"flat": [], "3d": []}
    for name, dog, what in DOG3D:
        img = cv2.imread(str(faces_dir / name))
        face = max(det.detect(img), key=lambda f: f.box[2])
        face.emotion = EMOTION_OF[dog]
        x, y, w, h = face.box
        side = int(2.3 * max(w, h))
        ih, iw = img.shape[:2]
        # the crop's centre (in the padded picture), moved to keep the crop inside the photo where it fits
        cx = side + (min(max(x + w // 2, side // 2), iw - side // 2) if iw >= side else x + w // 2)
        cy = side + (min(max(y + h // 2 - int(0.35 * h), side // 2), ih - side // 2) if ih >= side
                     else y + h // 2 - int(0.35 * h))
        live = rig3d.Reactions()(face, 0.0)
        for render in rows:
            canvas = img.copy()
            masks.Painter(masks.default_masks(), render=render).paint(canvas, [face], [live])
            canvas = cv2.copyMakeBorder(canvas, side, side, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            crop = canvas[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2]
            crop = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA)
            cv2.rectangle(crop, (0, tile - 22), (tile, tile), (0, 0, 0), -1)
            cv2.putText(crop, f"{what}: {'flat' if render == 'flat' else '3-D'}", (6, tile - 7),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            rows[render].append(crop)
    grid = np.vstack([np.hstack(rows["flat"]), np.hstack(rows["3d"])])
    cv2.imwrite(str(out), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("gif", "screenshots", "faces3d", "dog3d"), default=None,
                    help="make one of them (default: all)")
    a = ap.parse_args(argv)
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if a.only in (None, "gif"):
            demo_gif(Path(tmp), DOCS / "demo.gif")
        if a.only in (None, "screenshots"):
            screenshots(Path(tmp))
        if a.only in (None, "faces3d"):
            faces3d(Path(tmp), DOCS / "faces3d.jpg")
        if a.only in (None, "dog3d"):
            dog3d(DOCS / "dog3d.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())


