/*
 * Polyseek's launcher for an Elasticsearch node assembled from Maven Central jars.
 *
 * The stock launcher (server-cli + entitlement agent) is not published there and refuses root;
 * this main builds the environment from the config folder, loads modules/ and plugins/ with
 * PluginsLoader and starts org.elasticsearch.node.Node.  It writes its pid to -Dpolyseek.pidfile
 * once the node is started and closes the node on SIGTERM.
 *
 * Compiled at setup by pipelines/engine/distribution.py against the server jars (Java 17+).
 */
package polyseek.engine;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;

import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public final class PolyseekNode {

    private PolyseekNode() {}

    public static void main(String[] args) {
        try {
            run();
        } catch (Throwable e) {
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run() throws Exception {
        Path home = Path.of(System.getProperty("es.path.home"));
        Path conf = Path.of(System.getProperty("es.path.conf"));
        String pidFile = System.getProperty("polyseek.pidfile");

        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), conf, () -> "polyseek-local");
        LogConfigurator.setNodeName(env.settings().get("node.name", "polyseek-local"));
        LogConfigurator.configure(env, false);

        Set<PluginBundle> modules = loadBundles("loadModulesBundles", env.modulesDir());
        Set<PluginBundle> plugins = loadBundles("loadPluginsBundles", env.pluginsDir());
        PluginsLoader loader = PluginsLoader.createPluginsLoader(modules, plugins, Map.of(), false);

        Node node = new Node(env, loader);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                if (pidFile != null) {
                    try {
                        Files.deleteIfExists(Path.of(pidFile));
                    } catch (Exception ignored) {
                        // the launcher waits for the process, not the file
                    }
                }
                stopped.countDown();
            }
        }, "polyseek-shutdown"));
        node.start();
        if (pidFile != null) {
            Files.writeString(Path.of(pidFile), Long.toString(ProcessHandle.current().pid()));
        }
        stopped.await();
    }

    /** PluginsLoader.loadModulesBundles(Path) on 8.x, (Path, boolean) on 9.x. */
    @SuppressWarnings("unchecked")
    private static Set<PluginBundle> loadBundles(String name, Path dir) throws Exception {
        for (Method m : PluginsLoader.class.getMethods()) {
            if (!m.getName().equals(name)) continue;
            if (m.getParameterCount() == 1) return (Set<PluginBundle>) m.invoke(null, dir);
            if (m.getParameterCount() == 2) return (Set<PluginBundle>) m.invoke(null, dir, false);
        }
        throw new IllegalStateException("no PluginsLoader." + name);
    }
}
