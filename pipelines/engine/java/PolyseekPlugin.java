/*
 * Polyseek's module for an Elasticsearch node assembled from Maven Central jars.
 *
 * Elasticsearch's analysis-common and rest-root modules are not published on Maven Central, so a
 * node built from the server jars has neither the language analyzers ("english", "german", ...)
 * nor the CJK/folding token filters Polyseek's mappings use, and answers GET / with 405.  This
 * module registers the same Lucene classes under the same names (Lucene's analyzers are in
 * lucene-analysis-common, a dependency of the server), and a GET / handler with the node's
 * name, cluster and version in Elasticsearch's shape.
 *
 * The REST-handler hook's signature differs between 8.x and 9.x: es8/ and es9/ hold the concrete
 * PolyseekModule for each, and distribution.py compiles the one matching the node's major version
 * into modules/polyseek/ at setup.
 */
package polyseek.engine;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.cjk.CJKBigramFilter;
import org.apache.lucene.analysis.cjk.CJKWidthFilter;
import org.apache.lucene.analysis.de.GermanAnalyzer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.es.SpanishAnalyzer;
import org.apache.lucene.analysis.fr.FrenchAnalyzer;
import org.apache.lucene.analysis.it.ItalianAnalyzer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.nl.DutchAnalyzer;
import org.apache.lucene.analysis.pt.PortugueseAnalyzer;
import org.apache.lucene.analysis.ru.RussianAnalyzer;
import org.apache.lucene.analysis.cjk.CJKAnalyzer;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterName;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.PreBuiltAnalyzerProviderFactory;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.indices.analysis.PreBuiltCacheFactory.CachingStrategy;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.util.Collection;
import java.util.List;
import java.util.function.Supplier;

public abstract class PolyseekPlugin extends Plugin implements AnalysisPlugin, ActionPlugin {

    protected final Settings settings;

    protected PolyseekPlugin(Settings settings) {
        this.settings = settings;
    }

    @Override
    public List<PreBuiltAnalyzerProviderFactory> getPreBuiltAnalyzerProviderFactories() {
        return List.of(
            analyzer("english", EnglishAnalyzer::new),
            analyzer("german", GermanAnalyzer::new),
            analyzer("french", FrenchAnalyzer::new),
            analyzer("spanish", SpanishAnalyzer::new),
            analyzer("italian", ItalianAnalyzer::new),
            analyzer("portuguese", PortugueseAnalyzer::new),
            analyzer("dutch", DutchAnalyzer::new),
            analyzer("russian", RussianAnalyzer::new),
            analyzer("cjk", CJKAnalyzer::new)
        );
    }

    private static PreBuiltAnalyzerProviderFactory analyzer(String name, Supplier<Analyzer> create) {
        return new PreBuiltAnalyzerProviderFactory(name, CachingStrategy.LUCENE, create);
    }

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        return List.of(
            PreConfiguredTokenFilter.singleton("asciifolding", true, ASCIIFoldingFilter::new),
            PreConfiguredTokenFilter.singleton("cjk_width", true, CJKWidthFilter::new),
            PreConfiguredTokenFilter.singleton("cjk_bigram", false, CJKBigramFilter::new)
        );
    }

    /** The handlers the concrete module registers (its getRestHandlers has the node version's signature). */
    protected Collection<RestHandler> polyseekRestHandlers() {
        return List.of(new RootHandler(settings));
    }

    /** GET / and HEAD /: the node's name, cluster and version (rest-root is not on Maven Central). */
    public static final class RootHandler extends BaseRestHandler {
        private final Settings settings;

        RootHandler(Settings settings) {
            this.settings = settings;
        }

        @Override
        public String getName() {
            return "polyseek_main_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                Build build = Build.current();
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                b.field("name", Node.NODE_NAME_SETTING.get(settings));
                b.field("cluster_name", ClusterName.CLUSTER_NAME_SETTING.get(settings).value());
                b.field("cluster_uuid", "_na_");
                b.startObject("version");
                b.field("number", build.qualifiedVersion());
                b.field("build_flavor", build.flavor());
                b.field("build_type", build.type().displayName());
                b.field("build_hash", build.hash());
                b.field("build_date", build.date());
                b.field("build_snapshot", build.isSnapshot());
                b.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
                b.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                b.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                b.endObject();
                b.field("tagline", "You Know, for Search");
                b.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, b));
            };
        }
    }
}
