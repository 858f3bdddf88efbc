package livefit.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Raw change -> Row(shard, raw change), the shape PyFlink's key_by produces, so the scoring
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

    public ShardRouter(int shards) {
        if (shards < 1) {
            throw new IllegalArgumentException("shards must be >= 1, not " + shards);
        }
        this.shards = shards;
    }

    @Override
    public void flatMap(Row raw, Collector<Row> out) {
        String topic = (String) raw.getField(0);
        JsonNode env = DebeziumEnvelope.read((byte[]) raw.getField(5));
        if (DebeziumEnvelope.isHeartbeat(env)) {
            return;
        }
        if (env != null && EVERY_SHARD_TABLE.equals(DebeziumEnvelope.table(env, topic))) {
            for (long shard = 0; shard < shards; shard++) {
                out.collect(Row.of(shard, raw));
            }
            return;
        }
        out.collect(Row.of(shardOf(customerId(env, topic), shards), raw));
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
