"""Model backends; each module registers its classes with ``@register_backend``."""
