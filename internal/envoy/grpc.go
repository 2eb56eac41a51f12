package envoy

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/causeway-mesh/causeway/internal/model"
)

// GRPCResourceName is the name of the listener and route configuration a
// proxyless gRPC client asks for when it dials xds:///HOST:PORT: HOST:PORT.
func GRPCResourceName(host model.Host, port uint32) string {
	return hostPort(string(host), port)
}

// GRPCListener is what grpc-go's xDS resolver asks for when it dials
// xds:///HOST:PORT: a listener named HOST:PORT whose api_listener is an
// HTTP connection manager taking routes from RDS GRPCResourceName over ADS,
// with the router as its one (and terminal) HTTP filter, typed, as grpc-go
// requires. It has no address: grpc-go does not listen on it.
//
// svc must not be nil.
func GRPCListener(svc *model.ServiceInfo, port model.ServicePort) *listenerv3.Listener {
	name := GRPCResourceName(svc.Host, port.Port)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name, // unused by grpc-go, required by the proto
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: typed(hcm)},
	}
}

// GRPCRoute is the route configuration GRPCListener refers to: one virtual
// host for HOST:PORT and HOST (grpc-go matches the dialed authority against
// the domains) sending every method to outbound|PORT||HOST.
//
// svc must not be nil.
func GRPCRoute(svc *model.ServiceInfo, port model.ServicePort) *routev3.RouteConfiguration {
	name := GRPCResourceName(svc.Host, port.Port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{name, string(svc.Host)},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: model.ClusterName(svc.Host, port.Port, "")},
				}},
			}},
		}},
	}
}
