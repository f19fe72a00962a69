"""What the stages share, grouped by what it is about:

``transport/``  the wire (every message), the protocol (credit, heartbeats, reset, validation, drops), sockets, metrics
``vision/``     detectors, BlazeFace, face tracking, emotion models, masks
``media/``      frame sources and sinks, the browser camera and view, the virtual camera
``scene/``      the built-in demo scene (faces, expressions, room, motion) and group photos of its people
``errors.py``   the one error type users see; ``service.py`` what every service process does on start and exit
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"  # masks and models shipped with the package
