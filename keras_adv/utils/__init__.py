"""Package-internal utilities shared by every keras_adv module.

`keras_adv.utils.validation` holds the argument checks (`check_number`,
`check_bounds`, ...) that give every constructor the same clear errors.
`keras_adv.utils.data_checks` checks training data before any weight changes,
`keras_adv.utils.trust` checks configs read from files, and
`keras_adv.utils.io` writes files atomically (docs/reliability.md).
"""

from keras_adv.utils import validation

__all__ = ["validation"]
