"""River's online logistic regression on livefit's features, with the same delayed labels.

Runs inside the River venv (``.venvs/river``, see river-requirements.txt), standard library and
River only. Reads a JSON-lines stream of operations in the order the job saw them:
``{"op": "score", "id": ..., "x": [...]}`` (predict before the label is known) and
``{"op": "learn", "id": ..., "y": 0|1}`` (the label resolved: learn from the features scored).
Writes ``{"<id>": p, ...}``: each interaction's probability at scoring time.

Usage: python river_baseline.py OPS.jsonl OUT.json
"""

import json
import sys

from river import compose, linear_model, optim, preprocessing


def main(ops_path: str, out_path: str) -> None:
    model = compose.Pipeline(preprocessing.StandardScaler(),
                             linear_model.LogisticRegression(optimizer=optim.SGD(0.01)))
    features: dict[str, dict[str, float]] = {}
    predictions: dict[str, float] = {}
    with open(ops_path) as fh:
        for line in fh:
            op = json.loads(line)
            key = str(op["id"])
            if op["op"] == "score":
                x = {f"f{i}": v for i, v in enumerate(op["x"])}
                features[key] = x
                predictions[key] = model.predict_proba_one(x).get(True, 0.0)
            else:
                if key in features:
                    model.learn_one(features.pop(key), bool(op["y"]))
    with open(out_path, "w") as fh:
        json.dump(predictions, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
