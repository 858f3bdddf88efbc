package livefit.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * Raw change -> Row(shard key, raw change), the shape PyFlink's key_by produces, so the scoring
 * operator can be keyed without a Python stage in front of it (parsing happens once, in the keyed
 * operator).
 *
 * <p>A change of a customer's row, interaction or order goes to its customer's shard: the row's
 * {@code id} for the customers table, else its {@code customer_id}; a record without a readable
 * one goes to shard 0 ({@link #UNROUTABLE}). The Python side parses every record, dead-letters
 * what is invalid and checks that a valid event's customer is the shard it arrived in, so these
 * rules can only misroute into a dead letter, never into another customer's state.
 *
 * <p>A change of a product goes to every shard. Each shard then sees the product rows and its
 * customers' changes in one stream, in the order of the changes topic (commit order), so an
 * interaction is scored with the product as it was when the interaction happened, not as it is
 * when some other input got there first. Python reports a product change that does not parse
 * once, from shard 0 (udfs/batch.py's {@code reported_by_shard}).
 *
 * <p>A Debezium heartbeat goes nowhere: its time has already moved the split's watermark on in
 * the source (ChangeEventTimeAssigner), and there is nothing in it to score.
 *
 * <p>The shard is {@code floorMod(customer id, shards)} (udfs/batch.py's {@code shard_of}): the
 * scoring operator is keyed by shard so that the {@link MicroBatcher} can hand it many customers'
 * changes at once; each customer's state is an entry of its shard's map state.
 *
 * <p>A shard's key is not its number but {@link #balancedKeys}: Flink hashes keys into key groups
 * and gives each subtask a range of them, and the numbers 0-15 hash unevenly (at parallelism 2,
 * 11 shards to one subtask and 5 to the other; at 8, two subtasks got none). The keys are chosen
 * so that shard {@code s} lands in key group {@code s * maxParallelism / shards}, which spreads
 * the shards as evenly as any parallelism allows.
 */
public class ShardRouter implements FlatMapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;

    /** The customer id of records with no readable one (tombstones, garbage). */
    public static final long UNROUTABLE = Long.MIN_VALUE;

    /** The table whose changes every shard gets. */
    public static final String EVERY_SHARD_TABLE = "products";

    public static final TypeInformation<Row> PRODUCED_TYPE =
            Types.ROW(Types.LONG, RawRecordDeserializer.PRODUCED_TYPE);

    private final int shards;
    private final long[] keys;

    public ShardRouter(int shards, int maxParallelism) {
        if (shards < 1) {
            throw new IllegalArgumentException("shards must be >= 1, not " + shards);
        }
        this.shards = shards;
        this.keys = balancedKeys(shards, maxParallelism);
    }

    /**
     * The key of each shard: for shard {@code s}, the smallest non-negative long that Flink
     * assigns to key group {@code s * maxParallelism / shards} (as PyFlink's KeyByKeySelector
     * wraps it: a Row of one field), each key used once.
     */
    public static long[] balancedKeys(int shards, int maxParallelism) {
        Map<Integer, ArrayDeque<Integer>> waiting = new HashMap<>(); // key group -> shards without a key
        for (int s = 0; s < shards; s++) {
            int group = (int) ((long) s * maxParallelism / shards);
            waiting.computeIfAbsent(group, g -> new ArrayDeque<>()).add(s);
        }
        long[] keys = new long[shards];
        int left = shards;
        for (long k = 0; left > 0; k++) {
            Row key = new Row(1);
            key.setField(0, k);
            int group = KeyGroupRangeAssignment.assignToKeyGroup(key, maxParallelism);
            ArrayDeque<Integer> shardsOfGroup = waiting.get(group);
            if (shardsOfGroup != null && !shardsOfGroup.isEmpty()) {
                keys[shardsOfGroup.poll()] = k;
                left--;
            }
        }
        return keys;
    }

    @Override
    public void flatMap(Row raw, Collector<Row> out) {
        String topic = (String) raw.getField(0);
        JsonNode env = DebeziumEnvelope.read((byte[]) raw.getField(5));
        if (DebeziumEnvelope.isHeartbeat(env)) {
            return;
        }
        if (env != null && EVERY_SHARD_TABLE.equals(DebeziumEnvelope.table(env, topic))) {
            for (long key : keys) {
                out.collect(Row.of(key, raw));
            }
            return;
        }
        out.collect(Row.of(keys[(int) shardOf(customerId(env, topic), shards)], raw));
    }

    /** The shard of a customer (unroutable records land in shard 0 for power-of-two counts). */
    public static long shardOf(long customerId, int shards) {
        return Math.floorMod(customerId, (long) shards);
    }

    /** The customer a raw change on {@code topic} belongs to, or {@link #UNROUTABLE}. */
    public static long customerId(String topic, byte[] value) {
        return customerId(DebeziumEnvelope.read(value), topic);
    }

    private static long customerId(JsonNode env, String topic) {
        if (env == null) {
            return UNROUTABLE;
        }
        String field = "customers".equals(DebeziumEnvelope.table(env, topic)) ? "id" : "customer_id";
        JsonNode id = DebeziumEnvelope.row(env).path(field);
        return id.isIntegralNumber() && id.canConvertToLong() ? id.asLong() : UNROUTABLE;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return PRODUCED_TYPE;
    }
}
