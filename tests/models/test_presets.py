"""Model presets: shapes, logits, the residual structure and error messages."""

import keras
import numpy as np
import pytest

from keras_adv.models import presets


@pytest.mark.parametrize("name", [n for n in presets.available() if n != "tabular_mlp"])
@pytest.mark.parametrize("shape, classes", [((8, 8, 1), 10), ((28, 28, 1), 10), ((32, 32, 3), 100)])
def test_presets_build_for_every_dataset_shape(name, shape, classes):
    model = presets.get(name, shape, classes)
    x = np.random.default_rng(0).uniform(size=(2,) + shape).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (2, classes)
    assert not np.allclose(out.sum(-1), 1.0)  # logits, not probabilities


def test_small_resnet_has_residual_blocks_and_downsamples():
    model = presets.small_resnet((32, 32, 3), 10)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 3  # three stages of one block
    assert model.get_layer("stage3_block1_out").output.shape[1:3] == (8, 8)
    small = presets.small_resnet((8, 8, 1), 10)
    assert small.get_layer("stage3_block1_out").output.shape[1:3] == (4, 4)  # stops halving at 4
    deeper = presets.small_resnet((32, 32, 3), 10, blocks_per_stage=2)
    assert sum(isinstance(layer, keras.layers.Add) for layer in deeper.layers) == 6


def test_small_resnet_trains_on_digits(digits):
    (x, y), _ = digits
    model = presets.get("small_resnet", (8, 8, 1), 10)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    first = model.evaluate(x[:128], y[:128], verbose=0)[0]
    model.fit(x[:128], y[:128], epochs=2, batch_size=32, verbose=0)
    assert model.evaluate(x[:128], y[:128], verbose=0)[0] < first


@pytest.mark.parametrize("args, match", [
    (("resnet50", (8, 8, 1), 10), "Available presets: small_cnn, small_resnet"),
    (("small_cnn", (8, 8, 1), 1), "`num_classes`"),
    (("small_resnet", (64,), 10), "`input_shape`"),
])
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        presets.get(*args)


def test_text_classifier_is_built_for_a_vocabulary_not_by_name():
    # Not in available() (nor `keras-adv list`'s --model presets): it takes a vocabulary, not an input shape.
    assert "text_classifier" not in presets.available()
    with pytest.raises(ValueError, match="`text_classifier` is built for a vocabulary.*text_classifier\\(vocab_size"):
        presets.get("text_classifier", (16,), 2)
    from keras_adv.cli import CLIError
    from keras_adv.cli.registry import check_preset

    with pytest.raises(CLIError, match="text_classifier is a text model"):
        check_preset("text_classifier")


def test_tabular_mlp_standardizes_raw_records_inside_the_model():
    data = np.random.default_rng(0).normal(1000.0, 50.0, size=(64, 5)).astype("float32")
    model = presets.get("tabular_mlp", (5,), 2)
    assert model.predict(data[:2], verbose=0).shape == (2, 2)
    adapted = presets.tabular_mlp((5,), 3, data=data, width=8)
    z = adapted.get_layer("standardize")(data).numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="features"):
        presets.tabular_mlp((8, 8, 1), 2)
