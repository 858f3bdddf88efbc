from udfs.control import ModelChoice, parse_control
from udfs.drift import DriftCorrection


def test_valid_and_refused_control_messages():
    assert parse_control(b'{"action":"use_model","model":"propensity","version":2}') == ModelChoice("propensity", 2)
    for bad in (None, b"\xff", b"[]", b'{"action":"load","model":"p","version":1}',
                b'{"action":"use_model","model":"/tmp/x.joblib","version":1}',
                b'{"action":"use_model","model":"p","version":"2"}',
                b'{"action":"use_model","model":"p","version":0}'):
        assert isinstance(parse_control(bad), str), bad


def test_drift_corrections_round_trip_and_bad_ones_are_refused():
    import json

    c = DriftCorrection("premium", 0.41, 150, 1_700_000_000_000)
    assert parse_control(json.dumps(c.to_message()).encode()) == c
    for bad in ({"segment": "../x", "offset": 0.1}, {"segment": "a", "offset": float("nan")},
                {"segment": "a", "offset": 7.0}, {"segment": "a", "offset": "0.1"},
                {"segment": "a", "offset": True}, {"segment": "a", "offset": 0.1, "labels": -1},
                {"segment": "", "offset": 0.1}):
        msg = {"action": "segment_drift", "labels": 1, "event_ms": 0, **bad}
        assert isinstance(parse_control(json.dumps(msg).encode()), str), bad
