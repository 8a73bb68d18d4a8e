"""`keras-adv export`: `AdversarialModel.export`, then a check that the SavedModel answers."""

from __future__ import annotations

import json
import os
import re

from keras_adv.cli import inputs
from keras_adv.utils.io import atomic_directory, atomic_write  # standard library only: no TensorFlow at start-up
from keras_adv.cli._startup import library
from keras_adv.cli.registry import CLIError, check_dataset

__all__ = ["run", "export_saved_model"]


def export_saved_model(model, path: str, input_name=None) -> str:
    """Writes `model`'s inference graph with `AdversarialModel.export`; returns the serving input name.

    A plain Keras classifier is wrapped first (the wrapper's attack is never
    used: only the base model is exported), so every SavedModel the CLI
    writes has the same signature: `serving_default`, one input, output
    `{"predictions": ...}`.
    """
    ka = library()
    import tensorflow as tf

    if not isinstance(model, ka.AdversarialModel):
        if not getattr(model, "inputs", None):
            raise CLIError("cannot infer the input shape of this model; save a functional or Sequential model "
                           "built with keras.Input.")
        model = ka.AdversarialModel(model, attack=ka.attacks.FGSM(epsilon=0.0))
    with atomic_directory(path, replace=True) as tmp:  # TF Serving never sees a half-written version
        model.export(tmp, input_name=input_name, verbose=False)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    names = list(signature.structured_input_signature[1])
    return names[0]


def run(args) -> int:
    model = inputs.load_model(args.model_file)
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "serving", "1")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"the export folder {out} is a file; give a folder such as serving/1.")
    if args.input_name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.input_name):
        raise CLIError(f"--input-name {args.input_name!r}: a serving input name is letters, digits and "
                       "underscores, not starting with a digit (e.g. 'image').")
    if os.path.exists(out) and os.listdir(out) and not args.overwrite:
        raise CLIError(f"the export folder {out} is not empty; pass --overwrite or choose another folder.")
    dataset = args.dataset
    report_path = os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "report.json")
    if dataset is None and os.path.exists(report_path):  # written by `keras-adv train`
        with open(report_path) as f:
            dataset = json.load(f).get("dataset")
    meta = check_dataset(dataset) if dataset else None
    ka = library()
    import numpy as np
    import tensorflow as tf

    from keras_adv.evaluation._common import predicted_classes

    base = inputs.base_model(model)
    if meta is not None and getattr(base, "inputs", None):  # before anything is written
        got = tuple(base.inputs[0].shape[1:])
        if got != tuple(meta.input_shape):
            raise CLIError(f"the model takes inputs of shape {got} but dataset {meta.name!r} has inputs of shape "
                           f"{tuple(meta.input_shape)}; pass the dataset it was trained on with --dataset.")
    input_name = export_saved_model(model, out, args.input_name)
    shape = tuple(base.inputs[0].shape[1:]) if getattr(base, "inputs", None) else None
    sample = np.zeros((1,) + shape, "float32") if shape else None
    if meta is not None:
        sample, _ = ka.datasets.load(meta.name, "test", limit=1)
    if sample is None:
        print(f"exported {out}")
        return 0
    outputs = tf.saved_model.load(out).signatures["serving_default"](**{input_name: tf.constant(sample)})
    predictions = outputs["predictions"].numpy()
    request_path = os.path.join(os.path.dirname(os.path.abspath(args.model_file)), "request.json")
    with atomic_write(request_path) as f:
        json.dump({"signature_name": "serving_default", "instances": sample.tolist()}, f)
    print(f"exported {out}  (SavedModel: signature 'serving_default', input {input_name!r} "
          f"{list((None,) + shape)}, output 'predictions' {list(predictions.shape[1:])})")
    print(f"checked: tf.saved_model.load answers, predicted class {int(predicted_classes(predictions)[0])} "
          f"for the {'test image' if meta is not None else 'all-zero image'} in {request_path}")
    base_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.basename(os.path.normpath(out)).isdigit():
        print(f"note: TF Serving loads numbered version folders (NAME/1, NAME/2, ...); {out} is not one, so "
              "export to e.g. serving/1 for the command below to work.")
    print("serve it with TF Serving (the folder holds numbered versions):\n"
          f"  docker run -p 8501:8501 -v {base_dir}:/models/robust -e MODEL_NAME=robust tensorflow/serving\n"
          f"  curl -d @{request_path} http://localhost:8501/v1/models/robust:predict")
    return 0
