package livefit.flink;

import java.time.OffsetDateTime;
import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.types.Row;

/**
 * Event time of a raw Debezium record (a Row from RawRecordDeserializer): the row's own
 * {@code created_at} (ISO string, or epoch micros for {@code timestamp} columns), else the commit
 * time {@code source.ts_ms}, else the Kafka record timestamp. It runs inside the Kafka source so
 * watermarks stay per split (per topic partition), whoever produced the topic: the embedded feeder
 * or a Debezium in Kafka Connect (which stamps records with their send time). Never throws.
 */
public class ChangeEventTimeAssigner implements SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Override
    public long extractTimestamp(Row row, long recordTimestamp) {
        byte[] value = (byte[]) row.getField(5);
        if (value == null) {
            return recordTimestamp;
        }
        try {
            JsonNode env = MAPPER.readTree(value);
            if (env == null || !env.isObject()) {
                return recordTimestamp;
            }
            if (!env.has("op") && env.path("payload").isObject()) {
                env = env.get("payload");
            }
            JsonNode image = env.path("after");
            if (!image.isObject()) {
                image = env.path("before");
            }
            JsonNode created = image.path("created_at");
            if (created.isTextual()) {
                return OffsetDateTime.parse(created.asText()).toInstant().toEpochMilli();
            }
            if (created.isIntegralNumber()) {
                return created.asLong() / 1000L;
            }
            JsonNode commit = env.path("source").path("ts_ms");
            if (commit.isIntegralNumber()) {
                return commit.asLong();
            }
        } catch (Exception e) {
            // Not an envelope: the parser dead-letters it; its time does not matter.
        }
        return recordTimestamp;
    }
}
