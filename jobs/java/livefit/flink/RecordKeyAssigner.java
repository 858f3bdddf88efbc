package livefit.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.types.Row;

/**
 * Row(topic, key bytes, value bytes) -> Row(key as text, the row): the shape PyFlink's key_by
 * produces, so an output of a Python operator can be keyed without a Python key-by stage. The
 * scoring operator's drift examples are keyed this way by their segment. A null key is keyed "".
 */
public class RecordKeyAssigner implements MapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> RECORD_TYPE =
            Types.ROW_NAMED(new String[] {"topic", "key", "value"},
                    Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE), Types.PRIMITIVE_ARRAY(Types.BYTE));
    public static final TypeInformation<Row> PRODUCED_TYPE = Types.ROW(Types.STRING, RECORD_TYPE);

    @Override
    public Row map(Row record) {
        byte[] key = (byte[]) record.getField(1);
        return Row.of(key == null ? "" : new String(key, StandardCharsets.UTF_8), record);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return PRODUCED_TYPE;
    }
}
