"""What the stages share, grouped by what it is about:

``transport/``  the wire (every message), the protocol (credit, heartbeats, reset, validation, drops), sockets, metrics
``vision/``     detectors, BlazeFace, face tracking, emotion models, masks
``media/``      frame sources and the built-in demo scene
``errors.py``   the one error type users see; ``service.py`` what every service process does on start and exit
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"  # masks and models shipped with the package
