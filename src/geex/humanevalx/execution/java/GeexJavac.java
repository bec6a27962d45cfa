// A long-lived javac for the HumanEval-X harness: one JVM compiles every sample of a worker.
// Protocol (UTF-8 lines): the harness writes a directory; the server compiles every *.java in it
// into that directory and answers "OK <n>" or "FAIL <n>", followed by n bytes of diagnostics.
// Annotation processing is off, so compiling runs none of the code it compiles.

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

public class GeexJavac {
    public static void main(String[] args) throws Exception {
        JavaCompiler compiler = ToolProvider.getSystemJavaCompiler();
        StandardJavaFileManager files = compiler.getStandardFileManager(null, null, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        OutputStream out = new FileOutputStream(FileDescriptor.out);
        String line;
        while ((line = in.readLine()) != null) {
            Path dir = Paths.get(line.trim());
            StringWriter diagnostics = new StringWriter();
            boolean ok;
            try {
                List<String> sources = new ArrayList<>();
                try (DirectoryStream<Path> stream = Files.newDirectoryStream(dir, "*.java")) {
                    for (Path p : stream) sources.add(p.toString());
                }
                List<String> options = Arrays.asList(
                    "-d", dir.toString(), "-proc:none", "-encoding", "UTF-8", "-nowarn", "-Xlint:none",
                    "-g:none", "-implicit:none");
                ok = compiler.getTask(diagnostics, files, null, options, null,
                                      files.getJavaFileObjectsFromStrings(sources)).call();
            } catch (Throwable t) {
                ok = false;
                diagnostics.write("geex-javac internal error: " + t);
            }
            byte[] text = diagnostics.toString().getBytes(StandardCharsets.UTF_8);
            out.write(((ok ? "OK " : "FAIL ") + text.length + "\n").getBytes(StandardCharsets.UTF_8));
            out.write(text);
            out.flush();
        }
    }
}
