package livefit.flink;

import java.io.IOException;
import java.util.List;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.types.Row;

/**
 * Row(key, Row(topic, key, value)) -> the same shape, one element per key holding all its records
 * of up to {@code maxDelayMs} (see {@link KeyedBatcher}): the value is the records in
 * {@link OutputSplitter}'s framing (decoded by udfs/batch.py decode_outputs), topic and key are
 * the first record's.
 *
 * <p>Why: the scoring operator hands each segment's resolved labels to the drift learner once per
 * Python call, hundreds of times a second in a catch-up; each hand-over was a Python call on the
 * drift learner's thread, contending for the one interpreter's lock with the scoring thread. The
 * drift learner needs its examples in order, not within milliseconds.
 */
public class RecordBatcher extends KeyedBatcher {
    private static final long serialVersionUID = 1L;

    public RecordBatcher(int maxRecords, long maxDelayMs) {
        super(maxRecords, maxDelayMs);
    }

    /** {@code keyed} (RecordKeyAssigner's rows) in batches per key, chained to the operator before it. */
    public static DataStream<Row> apply(DataStream<Row> keyed, int maxRecords, long maxDelayMs) {
        return keyed.transform("batch-by-key", RecordKeyAssigner.PRODUCED_TYPE,
                               new RecordBatcher(maxRecords, maxDelayMs));
    }

    @Override
    protected Row batchOf(Object key, List<Row> records) throws IOException {
        Row first = records.get(0);
        return Row.of(key, Row.of(first.getField(0), first.getField(1), OutputSplitter.encode(records)));
    }
}
