"""Input domains: what an attacker may change (`keras_adv.domains.Box`, `keras_adv.domains.FeatureSpace`).

Every attack takes `domain=` (or the shorthand `bounds=(lo, hi)`, a `Box`).
See `keras_adv.domains.Domain` for the interface a new input kind implements;
`FeatureSpace` describes tabular records (bounds, mutability, integers, one-hot
groups, relations) and `check_examples` checks records against it independently.
"""

from keras_adv.domains.base import Box, Domain, get
from keras_adv.domains.checker import CheckResult, check_examples
from keras_adv.domains.feature_space import FeatureSpace
from keras_adv.domains.relations import LessEqual, Relation

__all__ = ["Domain", "Box", "get", "CheckResult", "FeatureSpace", "LessEqual", "Relation", "check_examples"]
