package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/causeway-mesh/causeway/internal/xdsauth"
)

// newXDSAuth builds the authenticator of the secure port's ADS streams
// from the CA (which checks tokens and client certificates).
func (s *Server) newXDSAuth() error {
	a, err := xdsauth.New(xdsauth.Config{Checker: s.ca, Registerer: s.registry, Logger: s.log.With("component", "xds-auth")})
	if err != nil {
		return err
	}
	s.xdsAuth = a
	return nil
}

// secureServerOptions are the gRPC options of the secure port: the xDS
// server's, TLS with the CA's serving certificate (a client certificate
// is verified against the mesh root), and the authentication of every ADS
// stream. The plaintext port has none of the last two.
func (s *Server) secureServerOptions() []grpc.ServerOption {
	return append(s.xds.GRPCServerOptions(),
		grpc.Creds(credentials.NewTLS(s.ca.ServingTLSConfig())),
		grpc.ChainStreamInterceptor(s.xdsAuth.StreamInterceptor()))
}
