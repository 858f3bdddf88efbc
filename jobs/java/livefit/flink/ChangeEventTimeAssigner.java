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
 * Kafka record timestamp. A {@code created_at} more than {@code job.max_created_after_commit_ms}
 * (a minute by default) after the commit time is a wrong clock: the parser dead-letters that row,
 * and here it takes its commit time, so it cannot move the watermark ahead (which would resolve
 * every pending label at once). It runs inside the Kafka source so watermarks stay per split
 * (per topic partition), whoever produced the topic: the embedded feeder or a Debezium in Kafka
 * Connect (which stamps records with their send time). Never throws.
 */
public class ChangeEventTimeAssigner implements SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;

    /**
     * How far a row's {@code created_at} may lie after its commit time, by default, before it
     * counts as a wrong clock (udfs/envelope.py's {@code DEFAULT_MAX_CREATED_AFTER_COMMIT_MS}).
     */
    public static final long DEFAULT_MAX_CREATED_AFTER_COMMIT_MS = 60_000L;

    private final long maxCreatedAfterCommitMs;

    public ChangeEventTimeAssigner() {
        this(DEFAULT_MAX_CREATED_AFTER_COMMIT_MS);
    }

    public ChangeEventTimeAssigner(long maxCreatedAfterCommitMs) {
        this.maxCreatedAfterCommitMs = maxCreatedAfterCommitMs;
    }

    /**
     * Whether a record of Debezium's initial snapshot (its {@code source.snapshot} marker) stays
     * out of the watermark: every one but the snapshot's last. The snapshot reads table by table,
     * every interaction before any order, so event time moved by it would resolve interactions as
     * negatives before their orders are read. Held at the lowest time, the watermark waits for
     * the snapshot's last record (or the first streamed change); the parser still gives each row
     * its own time. Incremental snapshots interleave with the stream and are not held.
     */
    static boolean heldBySnapshot(String marker) {
        switch (marker) {
            case "true":
            case "first":
            case "first_in_data_collection":
            case "last_in_data_collection":
                return true;
            default:
                return false;
        }
    }

    @Override
    public long extractTimestamp(Row row, long recordTimestamp) {
        JsonNode env = DebeziumEnvelope.read((byte[]) row.getField(5));
        if (env == null) {
            return recordTimestamp;
        }
        if (heldBySnapshot(env.path("source").path("snapshot").asText(""))) {
            return Long.MIN_VALUE;
        }
        long committed = recordTimestamp;
        JsonNode commit = env.path("source").path("ts_ms");
        JsonNode emitted = env.path("ts_ms");
        if (commit.isIntegralNumber()) {
            committed = commit.asLong();
        } else if (emitted.isIntegralNumber()) {
            committed = emitted.asLong();
        }
        try {
            JsonNode image = env.path("after");
            if (!image.isObject()) {
                image = env.path("before");
            }
            JsonNode created = image.path("created_at");
            long createdMs;
            if (created.isTextual()) {
                createdMs = OffsetDateTime.parse(created.asText()).toInstant().toEpochMilli();
            } else if (created.isIntegralNumber()) {
                createdMs = created.asLong() / 1000L;
            } else {
                return committed;
            }
            long margin = maxCreatedAfterCommitMs;
            boolean afterCommit = committed <= Long.MAX_VALUE - margin && createdMs > committed + margin;
            return afterCommit ? committed : createdMs;
        } catch (Exception e) {
            // An unreadable time: the parser dead-letters the record; its time does not matter.
        }
        return recordTimestamp;
    }
}
