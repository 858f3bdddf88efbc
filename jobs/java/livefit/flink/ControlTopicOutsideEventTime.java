package livefit.flink;

import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.types.Row;

/**
 * Keeps the control topic out of event time: the watermark rule of the source that reads it.
 * Control records (drift corrections, model choices) are produced with the wall-clock time; a
 * watermark that followed that clock would move event time to it whenever the changes went idle
 * (Debezium stopped for longer than the idleness): labels fall due early, and changes Debezium
 * delivers afterwards arrive behind the watermark.
 *
 * <p>So the control source is idle from its first periodic emit on and never emits a watermark,
 * whatever it reads; event time is the changes source's alone. It has its own source for that:
 * read together with the changes, a control split without records could not be told apart from
 * a change split and held the watermark back by Flink's idle rule, whose clock stands still
 * while the job is backpressured, so every label of a catch-up waited for its end.
 */
public final class ControlTopicOutsideEventTime implements WatermarkGenerator<Row> {

    /** The strategy of the control topic's source. */
    public static WatermarkStrategy<Row> strategy() {
        return WatermarkStrategy.forGenerator(context -> new ControlTopicOutsideEventTime());
    }

    @Override
    public void onEvent(Row event, long eventTimestamp, WatermarkOutput output) {
        output.markIdle();
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput output) {
        output.markIdle();
    }
}
