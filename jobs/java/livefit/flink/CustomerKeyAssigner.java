package livefit.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.types.Row;

/**
 * Raw record -> Row(shard of its customer, raw record): the shape PyFlink's key_by produces, so the scoring
 * operator can be keyed without a Python stage in front of it (parsing happens once, in the keyed
 * operator). The key is the row's {@code id} for the customers table, else its
 * {@code customer_id}; a record without a readable one gets {@link #UNROUTABLE}. The Python side
 * parses every record, dead-letters what is invalid and checks that a valid event's customer is
 * the key it arrived under, so these rules can only misroute into a dead letter, never into
 * another customer's state.
 *
 * <p>The shard is {@code floorMod(customer id, shards)} (udfs/batch.py's {@code shard_of}): the
 * scoring operator is keyed by shard so that the {@link MicroBatcher} can hand it many customers'
 * changes at once; each customer's state is an entry of its shard's map state.
 */
public class CustomerKeyAssigner implements MapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;

    /** The key of records with no readable customer id (tombstones, garbage). */
    public static final long UNROUTABLE = Long.MIN_VALUE;

    public static final TypeInformation<Row> PRODUCED_TYPE =
            Types.ROW(Types.LONG, RawRecordDeserializer.PRODUCED_TYPE);

    private final int shards;

    public CustomerKeyAssigner(int shards) {
        if (shards < 1) {
            throw new IllegalArgumentException("shards must be >= 1, not " + shards);
        }
        this.shards = shards;
    }

    @Override
    public Row map(Row raw) {
        return Row.of(shardOf(customerId((String) raw.getField(0), (byte[]) raw.getField(5)), shards), raw);
    }

    /** The shard of a customer (unroutable records land in shard 0 for power-of-two counts). */
    public static long shardOf(long customerId, int shards) {
        return Math.floorMod(customerId, (long) shards);
    }

    /** The customer a raw change on {@code topic} belongs to, or {@link #UNROUTABLE}. */
    public static long customerId(String topic, byte[] value) {
        JsonNode env = DebeziumEnvelope.read(value);
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
