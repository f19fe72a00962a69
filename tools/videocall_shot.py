"""docs/videocall.png: Chromium picking the "dogfilter" camera through the camera portal, as a video-call page would.

    python -m tools.videocall_shot [OUT.png]

Everything private and torn down after: PipeWire + WirePlumber + a session bus (commands/bench_vcam.py), a virtual
screen (Xvfb) for xdg-desktop-portal-gtk (the camera portal is only offered when an Access backend exists), the
portal itself, the camera permission for host apps granted in the portal's permission store (the Access dialog has
nobody to click it here), ``dogfilter live --source demo --virtual-camera``, and Chromium (Playwright, the system's
chromium, ``--enable-features=WebRtcPipeWireCamera``) on a page that lists the cameras and plays "dogfilter".

Needs (Debian): pipewire wireplumber gstreamer1.0-pipewire gstreamer1.0-tools xdg-desktop-portal
xdg-desktop-portal-gtk xvfb chromium libglib2.0-bin, and playwright (the test extra).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dogfilter.common import children

ROOT = Path(__file__).resolve().parent.parent
PAGE = """<!doctype html><html><body style="margin:0;background:#222;color:#eee;font:16px sans-serif">
<div id="info">dogfilter as a camera in Chromium</div><video id="v" autoplay muted playsinline width="640"
height="480"></video><script>
(async () => {
  const info = document.getElementById('info');
  try {
    for (let i = 0; ; i++) {  // Chromium lists PipeWire cameras a moment after the page asks
      try { (await navigator.mediaDevices.getUserMedia({video: true})).getTracks().forEach(t => t.stop()); break; }
      catch (e) { if (i >= 20) throw e; await new Promise(r => setTimeout(r, 500)); }
    }
    const devs = (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === 'videoinput');
    const d = devs.find(d => /dogfilter/i.test(d.label)) || devs[0];
    document.getElementById('v').srcObject = await navigator.mediaDevices.getUserMedia(
      {video: {deviceId: {exact: d.deviceId}}});
    info.textContent = 'cameras: ' + devs.map(d => d.label).join(', ') + ' | showing: ' + d.label;
    window.done = true;
  } catch (e) { info.textContent = 'error: ' + e; window.done = 'error: ' + e; }
})();
</script></body></html>"""


def main(out: str = str(ROOT / "docs" / "videocall.png")) -> int:
    from playwright.sync_api import sync_playwright

    from dogfilter.commands.bench_vcam import PrivatePipeWire, wait_node

    with PrivatePipeWire() as pw:
        env = {**pw.env, "DISPLAY": ":97", "XDG_CURRENT_DESKTOP": "gnome"}
        procs: list[subprocess.Popen] = []

        def spawn(*argv: str) -> subprocess.Popen:
            p = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            procs.append(p)
            return p

        try:
            spawn("Xvfb", ":97", "-screen", "0", "1280x800x24")
            time.sleep(1)
            spawn("/usr/libexec/xdg-desktop-portal-gtk")
            time.sleep(1)
            spawn("/usr/libexec/xdg-desktop-portal", "-r")
            time.sleep(2)
            subprocess.run(["gdbus", "call", "--session", "--dest", "org.freedesktop.impl.portal.PermissionStore",
                            "--object-path", "/org/freedesktop/impl/portal/PermissionStore", "--method",
                            "org.freedesktop.impl.portal.PermissionStore.SetPermission", "devices", "true",
                            "camera", "", "['yes']"], env=env, check=True, capture_output=True, timeout=20)
            spawn(sys.executable, "-m", "dogfilter.commands.run", "live", "--source", "demo", "--virtual-camera",
                  "--http-port", "0", "--web-port", "0")
            if not wait_node(env, "dogfilter", 60):
                raise SystemExit("the dogfilter camera did not appear")
            time.sleep(3)
            page = Path(pw.dir) / "call.html"
            page.write_text(PAGE)
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, env=env,
                                      args=["--enable-features=WebRtcPipeWireCamera",
                                            "--use-fake-ui-for-media-stream", "--no-sandbox"])
                pg = b.new_page(viewport={"width": 660, "height": 540})
                pg.goto(page.as_uri())
                pg.wait_for_function("window.done", timeout=30000)
                time.sleep(3)
                print(pg.inner_text("#info"))
                pg.screenshot(path=out)
                b.close()
        finally:
            children.stop(reversed(procs), wait_s=10, group=True)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
