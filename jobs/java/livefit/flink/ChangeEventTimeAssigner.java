package livefit.flink;

import java.time.OffsetDateTime;
import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.types.Row;

/**
 * Event time of a raw Debezium record (a Row from RawRecordDeserializer): the row's own
 * {@code created_at} (ISO string, or epoch micros for {@code timestamp} columns), else the commit
 * time {@code source.ts_ms}, else the time Debezium stamped on the record ({@code ts_ms}: a
 * heartbeat has nothing else, and moves event time on while the database is quiet), else the
 * Kafka record timestamp. It runs inside the Kafka source so
 * watermarks stay per split (per topic partition), whoever produced the topic: the embedded feeder
 * or a Debezium in Kafka Connect (which stamps records with their send time). Never throws.
 */
public class ChangeEventTimeAssigner implements SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public long extractTimestamp(Row row, long recordTimestamp) {
        JsonNode env = DebeziumEnvelope.read((byte[]) row.getField(5));
        if (env == null) {
            return recordTimestamp;
        }
        try {
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
            JsonNode emitted = env.path("ts_ms");
            if (emitted.isIntegralNumber()) {
                return emitted.asLong();
            }
        } catch (Exception e) {
            // An unreadable time: the parser dead-letters the record; its time does not matter.
        }
        return recordTimestamp;
    }
}
