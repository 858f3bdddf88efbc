package livefit.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The few fields the JVM side reads from a Debezium change event (event time, routing key), with
 * the same rules as udfs/envelope.py. Full validation stays in Python: a record these helpers
 * cannot read is still handed on, and the Python parser dead-letters it with its reason.
 */
final class DebeziumEnvelope {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private DebeziumEnvelope() {}

    /** The envelope object (unwrapped from {@code payload} when schemas are enabled), or null. */
    static JsonNode read(byte[] value) {
        if (value == null) {
            return null;
        }
        try {
            JsonNode env = MAPPER.readTree(value);
            if (env == null || !env.isObject()) {
                return null;
            }
            if (!env.has("op") && env.path("payload").isObject()) {
                env = env.get("payload");
            }
            return env;
        } catch (Exception e) {
            return null; // not JSON: the parser dead-letters it
        }
    }

    /**
     * Debezium's heartbeat ({@code heartbeat.interval.ms}): {@code {"ts_ms": ...}} and nothing
     * else, sent while the database is quiet (udfs/envelope.py's {@code is_heartbeat}).
     */
    static boolean isHeartbeat(JsonNode env) {
        return env != null && env.size() == 1 && env.path("ts_ms").isIntegralNumber();
    }

    /** The table: {@code source.table}, else the topic's last segment (as the parser does). */
    static String table(JsonNode env, String topic) {
        JsonNode table = env.path("source").path("table");
        if (table.isTextual() && !table.asText().isEmpty()) {
            return table.asText();
        }
        return topic.substring(topic.lastIndexOf('.') + 1);
    }

    /** The row the change is about: the before-image for a delete, else the after-image. */
    static JsonNode row(JsonNode env) {
        return "d".equals(env.path("op").asText()) ? env.path("before") : env.path("after");
    }
}
