package livefit.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Hands every Kafka record to Python untouched: topic, partition, offset, timestamp, key bytes and
 * value bytes (null for a tombstone). PyFlink's value-only deserializers drop the key and the
 * coordinates, fail on null values and re-encode invalid UTF-8, so the dead-letter topic could not
 * keep the original bytes.
 */
public class RawRecordDeserializer implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> PRODUCED_TYPE =
            Types.ROW_NAMED(
                    new String[] {"topic", "partition", "offset", "timestamp", "key", "value"},
                    Types.STRING,
                    Types.INT,
                    Types.LONG,
                    Types.LONG,
                    Types.PRIMITIVE_ARRAY(Types.BYTE),
                    Types.PRIMITIVE_ARRAY(Types.BYTE));

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        out.collect(
                Row.of(
                        record.topic(),
                        record.partition(),
                        record.offset(),
                        record.timestamp(),
                        record.key(),
                        record.value()));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return PRODUCED_TYPE;
    }
}
