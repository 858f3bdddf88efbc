package livefit.flink;

import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.types.Row;

/**
 * Keeps the control topic out of event time. Control records (drift corrections, model choices)
 * are produced with the wall-clock time; read with the changes, a control split's watermark
 * would follow that clock, and whenever the changes split went idle (Debezium stopped for longer
 * than the idleness) it would move event time to the wall clock: labels fall due early, and
 * changes Debezium delivers afterwards arrive behind the watermark.
 *
 * <p>So a split whose first record is from the control topic is idle from then on and never
 * emits a watermark; every other split keeps the wrapped rule. Before its first record a split
 * cannot be told apart and follows the wrapped rule too (an empty split goes idle by it). Rows
 * are RawRecordDeserializer's: field 0 is the topic.
 */
public final class ControlTopicOutsideEventTime implements WatermarkGenerator<Row> {
    private final WatermarkGenerator<Row> changes;
    private final String controlTopic;
    private boolean control;

    public ControlTopicOutsideEventTime(WatermarkGenerator<Row> changes, String controlTopic) {
        this.changes = changes;
        this.controlTopic = controlTopic;
    }

    /** {@code changes}' rule for the change splits; control splits out of event time. */
    public static WatermarkStrategy<Row> strategy(WatermarkStrategy<Row> changes, String controlTopic) {
        return WatermarkStrategy.forGenerator(
                context -> new ControlTopicOutsideEventTime(changes.createWatermarkGenerator(context), controlTopic));
    }

    @Override
    public void onEvent(Row event, long eventTimestamp, WatermarkOutput output) {
        if (!control && controlTopic.equals(event.getField(0))) {
            control = true;
            output.markIdle();
        }
        if (!control) {
            changes.onEvent(event, eventTimestamp, output);
        }
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput output) {
        if (control) {
            output.markIdle();
        } else {
            changes.onPeriodicEmit(output);
        }
    }
}
