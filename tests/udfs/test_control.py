from udfs.control import ModelChoice, parse_control


def test_valid_and_refused_control_messages():
    assert parse_control(b'{"action":"use_model","model":"propensity","version":2}') == ModelChoice("propensity", 2)
    for bad in (None, b"\xff", b"[]", b'{"action":"load","model":"p","version":1}',
                b'{"action":"use_model","model":"/tmp/x.joblib","version":1}',
                b'{"action":"use_model","model":"p","version":"2"}',
                b'{"action":"use_model","model":"p","version":0}'):
        assert isinstance(parse_control(bad), str), bad
