"""Configuration: defaults < file < environment, secrets from ${VAR}, clear errors."""

from __future__ import annotations

import pytest

from livefit.config import ConfigError, load_config


def test_precedence_file_then_environment(tmp_path):
    f = tmp_path / "livefit.toml"
    f.write_text('[kafka]\nbootstrap_servers = "kafka:9092"\npartitions = 3\n'
                 '[kafka.properties]\n"security.protocol" = "SASL_SSL"\n"sasl.password" = "${KAFKA_PW}"\n'
                 '[job]\nlabel_horizon_s = 60\n')
    cfg = load_config(f, env={"KAFKA_PW": "s3cret", "LIVEFIT_JOB__LABEL_HORIZON_S": "30",
                              "LIVEFIT_CDC__EMBEDDED_DEBEZIUM": "false"})
    assert cfg.kafka.bootstrap_servers == "kafka:9092" and cfg.kafka.partitions == 3
    assert cfg.kafka.properties == {"security.protocol": "SASL_SSL", "sasl.password": "s3cret"}
    assert cfg.job.label_horizon_s == 30.0 and cfg.cdc.embedded_debezium is False


def test_security_properties_reach_each_client_family(tmp_path):
    from livefit.kafka_io import client_conf

    f = tmp_path / "livefit.toml"
    f.write_text('[kafka]\nbootstrap_servers = "k:9093"\n'
                 '[kafka.properties]\n"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "SCRAM-SHA-512"\n'
                 '[kafka.java_properties]\n"sasl.jaas.config" = "ScramLoginModule required password=\\"${PW}\\";"\n'
                 '[kafka.librdkafka_properties]\n"sasl.username" = "livefit"\n"sasl.password" = "${PW}"\n')
    k = load_config(f, env={"PW": "s3cret"}).kafka
    java, rdk = k.java_client_properties(), client_conf(k)
    assert java["security.protocol"] == rdk["security.protocol"] == "SASL_SSL"
    assert "s3cret" in java["sasl.jaas.config"] and "sasl.password" not in java
    assert rdk["sasl.password"] == "s3cret" and "sasl.jaas.config" not in rdk
    sink = k.java_sink_properties()  # the job's producer: the same security, and its batching
    assert sink["security.protocol"] == "SASL_SSL" and "s3cret" in sink["sasl.jaas.config"]
    assert (sink["linger.ms"], sink["batch.size"]) == (str(k.sink_linger_ms), str(k.sink_batch_bytes))


def test_the_jobs_producer_compresses_as_configured():
    assert load_config(None, env={}).kafka.java_sink_properties()["compression.type"] == "lz4"
    off = load_config(None, env={"LIVEFIT_KAFKA__SINK_COMPRESSION": "none"}).kafka
    assert off.java_sink_properties()["compression.type"] == "none"
    with pytest.raises(ConfigError, match="kafka.sink_compression must be one of none, gzip"):
        load_config(None, env={"LIVEFIT_KAFKA__SINK_COMPRESSION": "lz5"}).kafka.java_sink_properties()


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key job.horizon"):
        load_config(None, env={"LIVEFIT_JOB__HORIZON": "1"})
    with pytest.raises(ConfigError, match="expected int"):
        load_config(None, env={"LIVEFIT_JOB__PARALLELISM": "two"})
    f = tmp_path / "c.toml"
    f.write_text('[kafka.properties]\n"sasl.password" = "${MISSING}"\n')
    with pytest.raises(ConfigError, match="MISSING"):
        load_config(f, env={})


def test_endpoints_resolve_from_the_embedded_stack(tmp_path):
    cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="livefit stack up"):
        cfg.resolved()
    (tmp_path / "stack.json").write_text('{"bootstrap_servers": "127.0.0.1:1", "postgres_dsn": "postgresql://x"}')
    r = cfg.resolved()
    assert (r.kafka.bootstrap_servers, r.postgres.dsn) == ("127.0.0.1:1", "postgresql://x")
    assert cfg.kafka.bootstrap_servers == ""  # resolving does not mutate the original
