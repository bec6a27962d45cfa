import java.lang.reflect.Modifier;
import java.net.URI;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Prints the public top-level classes of the given packages of this JDK, one {@code pkg.Name} per
 * line. Run once when geex prepares Java: the runner imports, by single-type imports, the classes
 * a test uses by simple name, so that a class of the same name in the program (a completion's
 * {@code class Arrays} whose {@code asList} returns an empty list) is a compile error instead of
 * replacing {@code java.util.Arrays} in the test.
 */
public final class GeexClasses {
    private GeexClasses() {}

    public static void main(String[] packages) throws Exception {
        FileSystem jrt = FileSystems.getFileSystem(URI.create("jrt:/"));
        ClassLoader loader = ClassLoader.getPlatformClassLoader();
        for (String pkg : packages) {
            Path modules = jrt.getPath("/packages", pkg);
            if (!Files.isDirectory(modules)) {
                continue;
            }
            try (DirectoryStream<Path> links = Files.newDirectoryStream(modules)) {
                for (Path module : links) {
                    Path dir = jrt.getPath("/modules", module.getFileName().toString(), pkg.replace('.', '/'));
                    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*.class")) {
                        for (Path file : files) {
                            String name = file.getFileName().toString();
                            name = name.substring(0, name.length() - ".class".length());
                            if (name.contains("$") || name.equals("module-info") || name.equals("package-info")) {
                                continue;
                            }
                            Class<?> cls = Class.forName(pkg + "." + name, false, loader);
                            if (Modifier.isPublic(cls.getModifiers())) {
                                System.out.println(pkg + "." + name);
                            }
                        }
                    }
                }
            }
        }
    }
}
