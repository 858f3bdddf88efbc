package livefit.flink;

import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.util.clock.RelativeClock;
import org.apache.flink.util.clock.SystemClock;

/**
 * Per-split watermarks (bounded out-of-orderness) whose split goes idle when it has had nothing
 * to read for {@code idleness}, also while the job is backpressured.
 *
 * <p>Why not {@code WatermarkStrategy.withIdleness}: since FLINK-35886 (Flink 1.20) its timer
 * runs on the source's input activity clock, which stops while the source is backpressured. When
 * the job catches up on a backlog it is backpressured all the time, so an empty topic (no orders
 * yet, no control messages) never went idle: the watermark stayed at its start and no label or
 * expiry fell due until the backlog was read. Measured on the state-scale bench: 110,000 labels,
 * all resolved after the last of 110,000 scores.
 *
 * <p>So a split is idle when either holds:
 * <ul>
 *   <li>Flink's rule: nothing for {@code idleness} of input activity time (an idle reader);</li>
 *   <li>nothing for {@code idleness} of wall time counted only while its reader handed on
 *       records of its other splits: the reader was fetching, and a Kafka fetch asks every
 *       assigned partition, so this split had nothing to give. Time in which the reader handed
 *       on nothing (backpressure, a stall) does not count, so a backpressured split with data is
 *       not taken for idle, which is what FLINK-35886 guards against.</li>
 * </ul>
 * A split that gets a record again is active again with its next watermark.
 *
 * <p>The reader's record count is per thread: a source subtask runs its splits' generators on its
 * one task thread.
 */
public class QuietSplitIdleness<T> implements WatermarkGenerator<T> {
    private static final ThreadLocal<long[]> READER_RECORDS = ThreadLocal.withInitial(() -> new long[1]);

    private final WatermarkGenerator<T> watermarks;
    private final long idleNanos;
    private final RelativeClock activityClock;
    private final RelativeClock wallClock;
    private final long[] readerRecords;

    private long records;
    private long recordsAtCheck;
    private long readerRecordsAtCheck;
    private long wallAtCheck;
    private long quietWhileReaderReadNanos;
    private long quietSinceActivityNanos;

    public QuietSplitIdleness(WatermarkGenerator<T> watermarks, Duration idleness, RelativeClock activityClock,
                              RelativeClock wallClock, long[] readerRecords) {
        if (idleness.isNegative() || idleness.isZero()) {
            throw new IllegalArgumentException("idleness must be positive, got " + idleness);
        }
        this.watermarks = watermarks;
        this.idleNanos = idleness.toNanos();
        this.activityClock = activityClock;
        this.wallClock = wallClock;
        this.readerRecords = readerRecords;
        this.readerRecordsAtCheck = readerRecords[0];
        this.wallAtCheck = wallClock.relativeTimeNanos();
        this.quietSinceActivityNanos = activityClock.relativeTimeNanos();
    }

    /** The source's strategy: {@code outOfOrderness} bounded watermarks, idle splits as above. */
    public static <T> WatermarkStrategy<T> strategy(Duration outOfOrderness, Duration idleness) {
        WatermarkGeneratorSupplier<T> supplier = context -> new QuietSplitIdleness<>(
                WatermarkStrategy.<T>forBoundedOutOfOrderness(outOfOrderness).createWatermarkGenerator(context),
                idleness, context.getInputActivityClock(), SystemClock.getInstance(), READER_RECORDS.get());
        return WatermarkStrategy.forGenerator(supplier);
    }

    @Override
    public void onEvent(T event, long eventTimestamp, WatermarkOutput output) {
        records++;
        readerRecords[0]++;
        watermarks.onEvent(event, eventTimestamp, output);
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput output) {
        if (checkIfIdle()) {
            output.markIdle();
        } else {
            watermarks.onPeriodicEmit(output);
        }
    }

    /** Whether the split is idle now. Counts the time since the last check: call it once per
     *  periodic emit, as {@link #onPeriodicEmit} does. */
    public boolean checkIfIdle() {
        long wall = wallClock.relativeTimeNanos();
        if (records != recordsAtCheck) {
            recordsAtCheck = records;
            quietWhileReaderReadNanos = 0;
            quietSinceActivityNanos = activityClock.relativeTimeNanos();
        } else if (readerRecords[0] != readerRecordsAtCheck) {
            quietWhileReaderReadNanos += wall - wallAtCheck;
        }
        readerRecordsAtCheck = readerRecords[0];
        wallAtCheck = wall;
        return quietWhileReaderReadNanos >= idleNanos
                || activityClock.relativeTimeNanos() - quietSinceActivityNanos >= idleNanos;
    }
}
