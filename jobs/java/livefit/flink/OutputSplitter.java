package livefit.flink;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * byte[] (everything one Python call produced) -> Row(topic, key, value) per output record.
 *
 * <p>Why: every row yielded from Python is a call into the JVM with a per-field conversion; the
 * scoring operator yields one byte array per micro-batch instead (udfs/batch.py encode_outputs),
 * split here. Framing, per record, big-endian: topic (u16 length + UTF-8), key (i32 length, -1
 * for null, + bytes), value (same). A "topic" may also name a route inside the job, with a name
 * no Kafka topic can have (it holds a colon): the job picks those records out before the sink.
 */
public class OutputSplitter implements FlatMapFunction<byte[], Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> PRODUCED_TYPE = Types.ROW_NAMED(
            new String[] {"topic", "key", "value"},
            Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE), Types.PRIMITIVE_ARRAY(Types.BYTE));

    @Override
    public void flatMap(byte[] outputs, Collector<Row> out) {
        for (Row row : decode(outputs)) {
            out.collect(row);
        }
    }

    /** The records in {@code outputs}; a truncated array throws (a framing bug, not bad input). */
    public static List<Row> decode(byte[] outputs) {
        ByteBuffer buf = ByteBuffer.wrap(outputs);
        List<Row> rows = new ArrayList<>();
        while (buf.hasRemaining()) {
            byte[] topic = new byte[Short.toUnsignedInt(buf.getShort())];
            buf.get(topic);
            rows.add(Row.of(new String(topic, StandardCharsets.UTF_8), field(buf), field(buf)));
        }
        return rows;
    }

    /** {@code rows} (Row(topic, key, value)) in the framing {@link #decode} reads. */
    public static byte[] encode(List<Row> rows) throws IOException {
        return MicroBatcher.encode(rows, false);
    }

    private static byte[] field(ByteBuffer buf) {
        int n = buf.getInt();
        if (n < 0) {
            return null;
        }
        byte[] bytes = new byte[n];
        buf.get(bytes);
        return bytes;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return PRODUCED_TYPE;
    }
}
