"""Package-internal utilities shared by every keras_adv module.

`keras_adv.utils.validation` holds the argument checks (`check_number`,
`check_bounds`, ...) that give every constructor the same clear errors.
"""

from keras_adv.utils import validation

__all__ = ["validation"]
