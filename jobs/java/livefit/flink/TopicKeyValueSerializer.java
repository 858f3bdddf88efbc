package livefit.flink;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.types.Row;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Writes a Row(topic, key, value) produced in Python as one Kafka record, so a single sink serves
 * the score, dead-letter and metrics topics and every record keeps its own key. PyFlink's builder
 * applies the key schema to the whole element and cannot pick a field for the key.
 */
public class TopicKeyValueSerializer implements KafkaRecordSerializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
            Row element, KafkaSinkContext context, Long timestamp) {
        String topic = (String) element.getField(0);
        byte[] key = (byte[]) element.getField(1);
        byte[] value = (byte[]) element.getField(2);
        // No explicit timestamp: the record gets the time it is produced. The element's timestamp
        // is the event time, months old for snapshot history, and would make time-based retention
        // delete fresh scores at once; the event time is in the record's JSON.
        return new ProducerRecord<>(topic, null, null, key, value);
    }
}
