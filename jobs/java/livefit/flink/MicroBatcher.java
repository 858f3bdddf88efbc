package livefit.flink;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Row(shard, raw record) -> Row(shard, batch): the raw records of each shard, collected for at
 * most {@code maxDelayMs} or {@code maxRecords} records (see {@link KeyedBatcher}), handed on as
 * one element. The batch is one byte array in a simple framing ({@link #encode}; decoded by
 * udfs/batch.py), not an array of rows, so nothing is converted field by field on the way in.
 *
 * <p>Before every checkpoint barrier it also hands every shard key an empty batch, the shard's
 * flush marker: the scoring operator keeps changed customer states in memory and writes a
 * shard's into Flink state when its marker arrives, which can only be done while that shard is
 * the current key. Channels are FIFO and the barrier follows the markers on each, so with
 * aligned checkpoints (the job never enables unaligned ones) every change applied before the
 * barrier is in Flink state when the operator snapshots it.
 */
public class MicroBatcher extends KeyedBatcher {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> PRODUCED_TYPE =
            Types.ROW(Types.LONG, Types.PRIMITIVE_ARRAY(Types.BYTE));

    private static final byte[] FLUSH_MARKER = new byte[0];

    private final long[] shardKeys;

    public MicroBatcher(int maxRecords, long maxDelayMs, long[] shardKeys) {
        super(maxRecords, maxDelayMs);
        this.shardKeys = shardKeys.clone();
    }

    /**
     * {@code keyed} (Row(shard, raw record)) in micro-batches, chained to the operator before it,
     * with a flush marker for each of {@code shards} shards (their {@link
     * ShardRouter#balancedKeys}) before every barrier.
     */
    public static DataStream<Row> apply(DataStream<Row> keyed, int maxRecords, long maxDelayMs,
                                        int shards, int maxParallelism) {
        // A plain operator gets Flink's default chaining (ALWAYS): it runs in the source's thread.
        return keyed.transform("micro-batch", PRODUCED_TYPE, new MicroBatcher(
                maxRecords, maxDelayMs, ShardRouter.balancedKeys(shards, maxParallelism)));
    }

    @Override
    protected void beforeBarrier() {
        for (long key : shardKeys) {
            output.collect(new StreamRecord<>(Row.of(key, FLUSH_MARKER)));
        }
    }

    @Override
    protected Row batchOf(Object shard, List<Row> records) throws IOException {
        return Row.of(shard, encode(records));
    }

    /**
     * Raw records (Row(topic, partition, offset, timestamp, key, value), see
     * {@link RawRecordDeserializer}) as one byte array: per record, big-endian, the topic
     * (u16 length + UTF-8), partition (i32), offset (i64), timestamp (i64), key and value (each
     * i32 length, -1 for null, + bytes).
     */
    public static byte[] encode(List<Row> records) throws IOException {
        return encode(records, true);
    }

    /**
     * {@code records} in that framing, with {@code coords} (partition, offset, timestamp: fields
     * 1-3) or without (Row(topic, key, value), {@link OutputSplitter}'s framing); topic first, key
     * and value last either way, like udfs/batch.py's {@code _encode}.
     */
    static byte[] encode(List<Row> records, boolean coords) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256 * records.size());
        DataOutputStream out = new DataOutputStream(bytes);
        for (Row r : records) {
            byte[] topic = ((String) r.getField(0)).getBytes(StandardCharsets.UTF_8);
            out.writeShort(topic.length);
            out.write(topic);
            if (coords) {
                out.writeInt(((Number) r.getField(1)).intValue());
                out.writeLong(((Number) r.getField(2)).longValue());
                out.writeLong(((Number) r.getField(3)).longValue());
            }
            writeBytes(out, (byte[]) r.getField(r.getArity() - 2));
            writeBytes(out, (byte[]) r.getField(r.getArity() - 1));
        }
        out.flush();
        return bytes.toByteArray();
    }

    private static void writeBytes(DataOutputStream out, byte[] b) throws IOException {
        if (b == null) {
            out.writeInt(-1);
        } else {
            out.writeInt(b.length);
            out.write(b);
        }
    }
}
