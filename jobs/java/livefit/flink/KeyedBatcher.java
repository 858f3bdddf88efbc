package livefit.flink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Row(key, value) -> Row(key, batch of values): the values of each key, collected for at most
 * {@code maxDelayMs} or {@code maxRecords} records, handed on as one element ({@link #batchOf}
 * says how the values become one).
 *
 * <p>Why: in PyFlink every element that enters Python costs a fixed round trip (iterator,
 * converters, reflection, and in thread mode the interpreter's lock, taken from another task's
 * thread) that dwarfs livefit's own per-element work; a batch pays it once.
 *
 * <p>Nothing is held across a watermark or a checkpoint: every buffer is flushed before a
 * watermark is forwarded (so no record is overtaken by a watermark and no event-time timer fires
 * early), before the checkpoint barrier ({@code prepareSnapshotPreBarrier}: the buffers need no
 * state, so a restore loses nothing) and at end of input. Order within a key is kept. A subclass
 * may hand on more before each barrier and at end of input ({@link #beforeBarrier}).
 */
public abstract class KeyedBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long maxDelayMs;

    private transient Map<Object, List<Row>> buffers;
    private transient int buffered;
    private transient long maxTimestamp;
    private transient boolean timerPending;

    protected KeyedBatcher(int maxRecords, long maxDelayMs) {
        if (maxRecords < 1 || maxDelayMs < 0) {
            throw new IllegalArgumentException("micro-batches need maxRecords >= 1 and maxDelayMs >= 0");
        }
        this.maxRecords = maxRecords;
        this.maxDelayMs = maxDelayMs;
    }

    /** The element handed on for {@code key}'s buffered {@code values}, oldest first. */
    protected abstract Row batchOf(Object key, List<Row> values) throws IOException;

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
        buffers.computeIfAbsent(in.getField(0), k -> new ArrayList<>()).add((Row) in.getField(1));
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
        beforeBarrier();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    /** Called before each checkpoint barrier, after the buffers are flushed: what a subclass must
     * hand on before every barrier (nothing by default). */
    protected void beforeBarrier() throws IOException {}

    @Override
    public void finish() throws Exception {
        flush();
        beforeBarrier(); // the end of input: nothing may stay unwritten downstream either
        super.finish();
    }

    private void flush() throws IOException {
        if (buffered == 0) {
            return;
        }
        for (Map.Entry<Object, List<Row>> e : buffers.entrySet()) {
            Row batch = batchOf(e.getKey(), e.getValue());
            output.collect(maxTimestamp == Long.MIN_VALUE ? new StreamRecord<>(batch)
                                                          : new StreamRecord<>(batch, maxTimestamp));
        }
        buffers.clear();
        buffered = 0;
        maxTimestamp = Long.MIN_VALUE;
    }
}
