"""Low-level tensor operations shared by attacks and layers (imports neither).

* `keras_adv.ops.image`: differentiable image transforms (`transform_images`).
"""

from keras_adv.ops import image
from keras_adv.ops.image import transform_images

__all__ = ["image", "transform_images"]
