// A counting job for the Flink tier (tests/flink): a datagen sequence counted by SQL, printed
// with a tag. Its state (the sequence's position and the count) lives in savepoints, so a job
// started from one carries on counting where the last one stopped.
//   Count stream TAG  -- unbounded, 20 rows a second
//   Count batch TAG   -- 1000 rows, then the job finishes
//   Count fail TAG    -- every row fails to convert: the job restarts, then fails
//   Count env A,B,... -- as batch, tagged with the values of the environment variables A, B...
//                        (non-word characters as _, joined by _): what the job's main() was given
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;

public class Count {
    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "stream";
        String tag = args.length > 1 ? args[1] : "count";
        if (mode.equals("env")) {
            StringBuilder values = new StringBuilder();
            for (String name : tag.split(",")) {
                String value = System.getenv(name);
                values.append(values.length() > 0 ? "_" : "").append(value == null ? "unset" : value);
            }
            tag = values.toString().replaceAll("[^A-Za-z0-9_-]", "_");
        }
        boolean batch = mode.equals("batch") || mode.equals("env");
        TableEnvironment env = TableEnvironment.create(
            batch ? EnvironmentSettings.inBatchMode() : EnvironmentSettings.inStreamingMode());
        String end = batch ? "1000" : "100000";
        String rate = batch ? "'number-of-rows'='1000', " : "'rows-per-second'='20', ";
        env.executeSql("CREATE TABLE src (n BIGINT, s STRING) WITH ('connector'='datagen', " + rate
            + "'fields.n.kind'='sequence', 'fields.n.start'='1', 'fields.n.end'='" + end + "', "
            + "'fields.s.length'='4')");
        env.executeSql("CREATE TABLE out_rows (c BIGINT, m BIGINT) WITH ('connector'='print', "
            + "'print-identifier'='" + tag + "')");
        String value = mode.equals("fail") ? "CAST(s AS BIGINT)" : "n";
        env.executeSql("INSERT INTO out_rows SELECT COUNT(*), MAX(" + value + ") FROM src");
    }
}
