package livefit.flink;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.types.Row;

/** Keeps the raw records of the given topics (or, with {@code keep = false}, all others). */
public class TopicFilter implements FilterFunction<Row> {
    private static final long serialVersionUID = 1L;
    private final Set<String> topics;
    private final boolean keep;

    public TopicFilter(String[] topics, boolean keep) {
        this.topics = new HashSet<>(Arrays.asList(topics));
        this.keep = keep;
    }

    @Override
    public boolean filter(Row raw) {
        return topics.contains((String) raw.getField(0)) == keep;
    }
}
