"""speechkd: distil Whisper teachers into small, fast students."""

__version__ = "0.1.0"
