/* The polyseek module for Elasticsearch 9.x: registers PolyseekPlugin's REST handlers (9.x hook). */
package polyseek.engine;

import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.rest.RestHandler;

import java.util.Collection;
import java.util.function.Predicate;
import java.util.function.Supplier;

public final class PolyseekModule extends PolyseekPlugin {

    public PolyseekModule(Settings settings) {
        super(settings);
    }

    @Override
    public Collection<RestHandler> getRestHandlers(RestHandlersServices services, Supplier<DiscoveryNodes> nodes,
                                                   Predicate<NodeFeature> features) {
        return polyseekRestHandlers();
    }
}
