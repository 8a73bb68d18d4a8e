"""Text data: tfds corpora (mocked), the synthetic task's decision rule, the text preset."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_adv as ka


@pytest.mark.parametrize("name", ["imdb_reviews", "ag_news"])
def test_load_text_vectorizes_with_an_adapted_vectorizer(name):
    with tfds.testing.mock_data(num_examples=10):
        (x, y), vec = ka.datasets.load_text(name, "train", sequence_length=16, max_tokens=50)
        x_test, y_test = ka.datasets.load_text(name, "test", vectorizer=vec, limit=4)
        texts, _ = ka.datasets.load_text(name, "test", vectorize=False, limit=3)
        ds = ka.datasets.load_text(name, "test", vectorizer=vec, batch_size=4, limit=6)
    assert isinstance(vec, keras.layers.TextVectorization) and 2 < vec.vocabulary_size() <= 50
    assert x.shape == (10, 16) and x.dtype == np.int64 and y.dtype == np.int64
    assert 0 <= x.min() and x.max() < vec.vocabulary_size() and x.max() > 1
    assert y.max() < ka.datasets.TEXT_DATASETS[name][1]
    assert x_test.shape == (4, 16) and len(y_test) == 4
    assert texts.dtype == object and isinstance(texts[0], bytes)
    assert [int(b[0].shape[0]) for b in ds] == [4, 2]


def test_load_text_bad_arguments():
    with pytest.raises(ValueError, match="Unknown text dataset 'imdb'"):
        ka.datasets.load_text("imdb")
    with pytest.raises(ValueError, match="`sequence_length`"):
        ka.datasets.load_text("imdb_reviews", sequence_length=0)
    with pytest.raises(TypeError, match="`vectorizer`"):
        ka.datasets.load_text("imdb_reviews", vectorizer="words")


def test_synthetic_task_follows_its_rule():
    task = ka.datasets.synthetic_text(300, vocab_size=100, margin=1, max_other=2, seed=3)
    assert task.x.shape == (300, 32) and task.x.dtype == np.int32
    np.testing.assert_array_equal(task.label_of(task.x), task.y)
    pos = np.isin(task.x, task.positive).sum(1)
    neg = np.isin(task.x, task.negative).sum(1)
    np.testing.assert_array_equal(np.abs(pos - neg), 1)  # margin one marker
    lengths = (task.x != 0).sum(1)
    assert lengths.min() >= 12 and lengths.max() <= 32
    assert 0.4 < task.y.mean() < 0.6
    # same seed, same task
    np.testing.assert_array_equal(ka.datasets.synthetic_text(300, vocab_size=100, seed=3).x, task.x)


def test_protected_hotflip_never_changes_the_true_label():
    task = ka.datasets.synthetic_text(64, vocab_size=60, seed=1)
    model = ka.models.presets.text_classifier(60, 2, sequence_length=32, architecture="bag",
                                              embedding_dim=8, width=8)
    adv = ka.attacks.HotFlip(max_substitutions=3, protected_tokens=task.protected_tokens)(
        model, task.x, task.y).numpy()
    assert (adv != task.x).sum() > 0
    np.testing.assert_array_equal(task.label_of(adv), task.y)


def test_text_classifier_preset():
    for arch in ("cnn", "bilstm", "bag"):
        m = ka.models.presets.text_classifier(50, 3, sequence_length=10, architecture=arch, width=4,
                                              embedding_dim=4)
        assert m.get_layer("embedding").mask_zero and m.output.shape == (None, 3)
    with pytest.raises(ValueError, match="`architecture`"):
        ka.models.presets.text_classifier(50, architecture="transformer")
    with pytest.raises(ValueError, match="`vocab_size`"):
        ka.models.presets.text_classifier(1)


def test_load_text_without_network_fails_fast_in_one_line(monkeypatch, tmp_path):
    """An unprepared corpus on a machine with no network: one clear error at once, not minutes of retries."""
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens on the discard port
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    data_dir = tmp_path / "tfds"
    with pytest.raises(ka.datasets.DatasetUnavailableError) as info:
        ka.datasets.load_text("imdb_reviews", "test", data_dir=str(data_dir))
    message = str(info.value)
    assert "\n" not in message
    for text in ("'imdb_reviews'", "download", str(data_dir), "synthetic_text"):
        assert text in message, message
    with pytest.raises(ka.datasets.DatasetUnavailableError, match="download=False"):
        ka.datasets.load_text("ag_news", data_dir=str(data_dir), download=False)


def test_with_unlabeled_keeps_longer_strings_and_wider_ids():
    x_lab = np.array(["free cash now", "see you at lunch"])  # <U16
    x_unl = np.array(["please call me later about the project report tomorrow", "win a free prize"])
    x, y, w = ka.datasets.with_unlabeled(x_lab, np.array([1, 0]), x_unl, shuffle=False)
    assert list(x) == list(x_lab) + list(x_unl)  # nothing truncated to the labeled width
    np.testing.assert_array_equal(w, [1, 1, 0, 0])
    ids_lab = np.array([[3, 4, 0]], np.int16)
    ids_unl = np.array([[70000, 5, 6]], np.int64)
    x, _, _ = ka.datasets.with_unlabeled(ids_lab, np.array([1]), ids_unl, shuffle=False)
    assert x.tolist() == [[3, 4, 0], [70000, 5, 6]]  # no id wrapped around
    with pytest.raises(TypeError, match="both be strings or both be numbers"):
        ka.datasets.with_unlabeled(ids_lab, np.array([1]), np.array([["a", "b", "c"]]))
