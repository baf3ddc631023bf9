"""Tiny helper shared by the config dataclasses."""


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds (config validation)."""
    if not condition:
        raise ValueError(message)
