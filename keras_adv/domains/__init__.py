"""Input domains: what an attacker may change (`keras_adv.domains.Box`, ...).

Every attack takes `domain=` (or the shorthand `bounds=(lo, hi)`, a `Box`).
See `keras_adv.domains.Domain` for the interface a new input kind implements.
"""

from keras_adv.domains.base import Box, Domain, get

__all__ = ["Domain", "Box", "get"]
