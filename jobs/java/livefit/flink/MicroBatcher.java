package livefit.flink;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Row(shard, raw record) -> Row(shard, batch): the raw records of each shard, collected for at
 * most {@code maxDelayMs} or {@code maxRecords} records, handed on as one element.
 *
 * <p>Why: in PyFlink every element that enters Python costs a fixed round trip (iterator,
 * converters, reflection) that dwarfs livefit's own per-event work; a batch pays it once. The
 * batch is one byte array in a simple framing ({@link #encode}; decoded by udfs/batch.py), not an
 * array of rows, so nothing is converted field by field on the way in.
 *
 * <p>Nothing is held across a watermark or a checkpoint: every buffer is flushed before a
 * watermark is forwarded (so no record is overtaken by a watermark and no event-time timer fires
 * early), before the checkpoint barrier ({@code prepareSnapshotPreBarrier}: the buffers need no
 * state, so a restore loses nothing) and at end of input. Order within a shard is kept.
 */
public class MicroBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> PRODUCED_TYPE =
            Types.ROW(Types.LONG, Types.PRIMITIVE_ARRAY(Types.BYTE));

    private final int maxRecords;
    private final long maxDelayMs;

    private transient Map<Long, List<Row>> buffers;
    private transient int buffered;
    private transient long maxTimestamp;
    private transient boolean timerPending;

    public MicroBatcher(int maxRecords, long maxDelayMs) {
        if (maxRecords < 1 || maxDelayMs < 0) {
            throw new IllegalArgumentException("micro-batches need maxRecords >= 1 and maxDelayMs >= 0");
        }
        this.maxRecords = maxRecords;
        this.maxDelayMs = maxDelayMs;
    }

    /** {@code keyed} (Row(shard, raw record)) in micro-batches, chained to the operator before it. */
    public static DataStream<Row> apply(DataStream<Row> keyed, int maxRecords, long maxDelayMs) {
        // A plain operator gets Flink's default chaining (ALWAYS): it runs in the source's thread.
        return keyed.transform("micro-batch", PRODUCED_TYPE, new MicroBatcher(maxRecords, maxDelayMs));
    }

    @Override
    public void open() throws Exception {
        super.open();
        buffers = new LinkedHashMap<>();
        buffered = 0;
        maxTimestamp = Long.MIN_VALUE;
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row in = element.getValue();
        buffers.computeIfAbsent((Long) in.getField(0), k -> new ArrayList<>()).add((Row) in.getField(1));
        if (element.hasTimestamp()) {
            maxTimestamp = Math.max(maxTimestamp, element.getTimestamp());
        }
        if (++buffered >= maxRecords) {
            flush();
        } else if (!timerPending) {
            timerPending = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + maxDelayMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        timerPending = false;
        flush();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    private void flush() throws IOException {
        if (buffered == 0) {
            return;
        }
        for (Map.Entry<Long, List<Row>> e : buffers.entrySet()) {
            Row batch = Row.of(e.getKey(), encode(e.getValue()));
            output.collect(maxTimestamp == Long.MIN_VALUE ? new StreamRecord<>(batch)
                                                          : new StreamRecord<>(batch, maxTimestamp));
        }
        buffers.clear();
        buffered = 0;
        maxTimestamp = Long.MIN_VALUE;
    }

    /**
     * Raw records (Row(topic, partition, offset, timestamp, key, value), see
     * {@link RawRecordDeserializer}) as one byte array: per record, big-endian, the topic
     * (u16 length + UTF-8), partition (i32), offset (i64), timestamp (i64), key and value (each
     * i32 length, -1 for null, + bytes).
     */
    public static byte[] encode(List<Row> records) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256 * records.size());
        DataOutputStream out = new DataOutputStream(bytes);
        for (Row r : records) {
            byte[] topic = ((String) r.getField(0)).getBytes(StandardCharsets.UTF_8);
            out.writeShort(topic.length);
            out.write(topic);
            out.writeInt(((Number) r.getField(1)).intValue());
            out.writeLong(((Number) r.getField(2)).longValue());
            out.writeLong(((Number) r.getField(3)).longValue());
            writeBytes(out, (byte[]) r.getField(4));
            writeBytes(out, (byte[]) r.getField(5));
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
