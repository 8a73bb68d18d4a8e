"""`Configurable`: the serialization base of keras_adv's small value objects (norms, domains)."""

from __future__ import annotations

__all__ = ["Configurable"]


class Configurable:
    """An object described entirely by its constructor arguments.

    Subclasses return those arguments (JSON-able) from `get_config`; the
    default `from_config` calls the constructor with them, and two objects
    are equal when they have the same class and the same config. Register
    subclasses with `@keras.saving.register_keras_serializable(package=...)`
    to make them loadable by `keras.saving.deserialize_keras_object` and
    inside saved models.
    """

    def get_config(self) -> dict:
        """Constructor arguments (none by default)."""
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(type(self))
