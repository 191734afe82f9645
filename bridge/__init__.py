"""callbridge: realtime AI voice-agent bridge."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callbridge")
except PackageNotFoundError:  # pragma: no cover - a tree that is not installed
    __version__ = "0+unknown"
