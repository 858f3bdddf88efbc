package livefit.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.types.Row;

/**
 * Row(topic, key bytes, value bytes) -> Row(key as text, the row): the shape PyFlink's key_by
 * produces, so an output of a Python operator can be keyed without a Python key-by stage.
 *
 * <p>The key is the record's Kafka key, or, given a field name, that top-level text field of the
 * JSON value: the label records on their way to the sink are keyed by customer, and the same
 * records go to the per-segment drift learner keyed by their {@code segment}, so the scoring
 * operator does not have to emit each label twice. A value without the field is keyed "" (the
 * Python side then reads the field itself and reports what is wrong).
 */
public class RecordKeyAssigner implements MapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper MAPPER = new ObjectMapper();

    public static final TypeInformation<Row> RECORD_TYPE =
            Types.ROW_NAMED(new String[] {"topic", "key", "value"},
                    Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE), Types.PRIMITIVE_ARRAY(Types.BYTE));
    public static final TypeInformation<Row> PRODUCED_TYPE = Types.ROW(Types.STRING, RECORD_TYPE);

    private final String jsonField; // null: the record's Kafka key

    public RecordKeyAssigner() {
        this(null);
    }

    public RecordKeyAssigner(String jsonField) {
        this.jsonField = jsonField;
    }

    @Override
    public Row map(Row record) {
        return Row.of(keyOf(record), record);
    }

    private String keyOf(Row record) {
        if (jsonField == null) {
            byte[] key = (byte[]) record.getField(1);
            return key == null ? "" : new String(key, StandardCharsets.UTF_8);
        }
        byte[] value = (byte[]) record.getField(2);
        if (value == null) {
            return "";
        }
        try {
            JsonNode field = MAPPER.readTree(value).path(jsonField);
            return field.isTextual() ? field.asText() : "";
        } catch (Exception e) {
            return "";
        }
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return PRODUCED_TYPE;
    }
}
