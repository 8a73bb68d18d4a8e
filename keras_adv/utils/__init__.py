"""Package-internal utilities shared by keras_adv modules."""
