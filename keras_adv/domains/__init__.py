"""Input domains: what an attacker may change. `FeatureSpace` describes tabular records."""

from keras_adv.domains.checker import CheckResult, check_examples
from keras_adv.domains.feature_space import FeatureSpace
from keras_adv.domains.relations import LessEqual, Relation

__all__ = ["CheckResult", "FeatureSpace", "LessEqual", "Relation", "check_examples"]
