import java.io.FileOutputStream;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;

/**
 * geex's Java test harness: {@code java -cp <harness>:. GeexMain} runs the test's {@code Main.main}.
 *
 * <p>Prologue, program, epilogue (see geex/humanevalx/execution/proof.py): the static initializer reads the
 * secret from stdin before any class of the program is loaded; the secret is written to the report
 * descriptor (reopened through /proc/self/fd, the JDK has no other way to use an inherited
 * descriptor) only once {@code Main.main} has returned normally. {@code System.exit},
 * {@code Runtime.halt}, shutdown hooks, uncaught-exception handlers and static initializers of the
 * program all end the JVM before that. The fields are private: a program that reflects into this
 * class on purpose is an attack, not an early exit.
 */
public final class GeexMain {
    private static final byte[] SECRET;
    private static final FileOutputStream REPORT;
    private static boolean entered;

    static {
        byte[] secret = null;
        FileOutputStream report = null;
        String fd = System.getenv("GEEX_PROOF_FD");
        if (fd != null) {
            try {
                byte[] line = new byte[256];
                int n = 0;
                int b;
                while (n < line.length && (b = System.in.read()) >= 0 && b != '\n') {
                    line[n++] = (byte) b;
                }
                secret = java.util.Arrays.copyOf(line, n);
                report = new FileOutputStream("/proc/self/fd/".concat(Integer.toString(Integer.parseInt(fd.trim()))));
            } catch (IOException | NumberFormatException e) {
                System.err.println("geex: cannot open the proof channel: " + e);
                secret = null;
                report = null;
            }
        }
        SECRET = secret;
        REPORT = report;
    }

    private GeexMain() {}

    public static void main(String[] args) throws Throwable {
        if (entered) {
            throw new IllegalStateException("geex: the harness's main was entered twice");
        }
        entered = true;
        Method main = Class.forName("Main").getMethod("main", String[].class);
        try {
            main.invoke(null, (Object) args);
        } catch (InvocationTargetException e) {
            throw e.getCause();  // as if Main.main had thrown it (the verdict reads its name)
        }
        report();
    }

    private static void report() throws IOException {
        if (REPORT != null && SECRET != null && SECRET.length > 0) {
            REPORT.write(SECRET);
            REPORT.flush();
        }
    }
}
