package ca

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// certService is istio.v1.auth.IstioCertificateService.
type certService struct {
	pb.UnimplementedIstioCertificateServiceServer
	a *Authority
}

// Register registers istio.v1.auth.IstioCertificateService on s (the
// server of the secure port, whose credentials come from
// [Authority.ServingTLSConfig]).
func (a *Authority) Register(s grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(s, &certService{a: a})
}

// unknownCluster labels the metrics of requests that name no known
// cluster, so that callers cannot grow the label set.
const unknownCluster = "unknown"

// CreateCertificate signs the CSR of a workload that proves, with a
// service-account token in `authorization: Bearer`, that it runs as a
// service account of the cluster named in the `clusterid` metadata (the
// config cluster when empty). The certificate carries that service
// account's SPIFFE id; the CSR may ask for it and nothing else. The answer
// is the new certificate, the CA's chain, and the root last.
func (s *certService) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	start := time.Now()
	r := s.a.createCertificate(ctx, req)
	code := status.Code(r.err)
	s.a.metrics.requests.WithLabelValues(r.clusterLabel, code.String()).Inc()
	attrs := []any{"cluster", r.clusterLabel, "code", code.String(), "duration", time.Since(start)}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "peer", p.Addr.String())
	}
	if r.identity != "" {
		attrs = append(attrs, "identity", r.identity)
	}
	if r.err != nil {
		s.a.log.Info("certificate request refused", append(attrs, "err", status.Convert(r.err).Message())...)
		return nil, r.err
	}
	s.a.log.Debug("certificate issued", append(attrs, "serial", r.issued.Cert.SerialNumber.Text(16),
		"notAfter", r.issued.Cert.NotAfter.UTC().Format(time.RFC3339))...)
	chain := make([]string, len(r.issued.Chain))
	for i, c := range r.issued.Chain {
		chain[i] = string(c)
	}
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}

// result is what a request came to, for the answer, the log and metrics.
type result struct {
	clusterLabel string
	identity     string
	issued       *pki.Issued
	err          error // a gRPC status error
}

func (a *Authority) createCertificate(ctx context.Context, req *pb.IstioCertificateRequest) result {
	md, _ := metadata.FromIncomingContext(ctx)
	cluster := model.ClusterID(firstValue(md, ClusterIDMetadataKey))
	if cluster == "" {
		cluster = a.cfg.ClusterID
	}
	res := result{clusterLabel: unknownCluster}
	if _, ok := a.cluster(cluster); ok {
		res.clusterLabel = string(cluster)
	}
	caller, err := a.authenticateToken(ctx, cluster, md, "the "+ClusterIDMetadataKey+" metadata")
	if err != nil {
		res.err = status.Convert(err).Err()
		return res
	}
	res.identity = model.SPIFFEID(a.cfg.TrustDomain, caller.Namespace, caller.ServiceAccount)

	ttl, err := a.ttl(req.GetValidityDuration())
	if err != nil {
		res.err = status.Error(codes.InvalidArgument, err.Error())
		return res
	}
	st := a.state.Load()
	if st.ca == nil {
		res.err = status.Error(codes.Unavailable, errNoCA.Error()+": try again shortly")
		return res
	}
	if err := checkCSRKey([]byte(req.GetCsr())); err != nil {
		res.err = status.Error(codes.InvalidArgument, err.Error())
		return res
	}
	issued, err := st.ca.SignCSR([]byte(req.GetCsr()), pki.SANs{URIs: []string{res.identity}}, ttl)
	switch {
	case errors.Is(err, pki.ErrInvalidCSR):
		res.err = status.Errorf(codes.InvalidArgument, "%v: send a PEM CSR signed by the key to certify", err)
	case errors.Is(err, pki.ErrNameNotAllowed):
		res.err = status.Errorf(codes.PermissionDenied, "%v: the token proves identity %s", err, res.identity)
	case errors.Is(err, pki.ErrExpired) || errors.Is(err, pki.ErrNotYetValid):
		res.err = status.Errorf(codes.Unavailable, "the CA cannot sign now: %v", err)
	case err != nil:
		res.err = status.Errorf(codes.Internal, "sign: %v", err)
	default:
		res.issued = issued
	}
	return res
}

// audienceText names the accepted token audiences, for errors.
func (a *Authority) audienceText() string {
	s := strings.Join(a.cfg.Audiences, ", ")
	if !a.cfg.NoDefaultAudience {
		s += " or the API server's own"
	}
	return s
}

// cluster returns the client of a cluster the control plane knows.
func (a *Authority) cluster(id model.ClusterID) (kubernetes.Interface, bool) {
	if a.cfg.Clusters != nil {
		if c, ok := a.cfg.Clusters(id); ok && c != nil {
			return c, true
		}
	}
	if id == a.cfg.ClusterID {
		return a.cfg.Client, true
	}
	return nil, false
}

// ttl turns the requested validity (seconds; 0 for the default) into the
// certificate's, clamped to WorkloadTTLMax.
func (a *Authority) ttl(seconds int64) (time.Duration, error) {
	switch {
	case seconds < 0:
		return 0, fmt.Errorf("validity_duration %d: want seconds > 0, or 0 for the default (%v)", seconds, a.cfg.WorkloadTTL)
	case seconds == 0:
		return a.cfg.WorkloadTTL, nil
	case seconds >= int64(a.cfg.WorkloadTTLMax/time.Second):
		return a.cfg.WorkloadTTLMax, nil
	}
	return time.Duration(seconds) * time.Second, nil
}

// bearerToken reads the token of `authorization: Bearer TOKEN`.
func bearerToken(md metadata.MD) (string, error) {
	v := firstValue(md, "authorization")
	if v == "" {
		return "", errors.New("no bearer token: send a Kubernetes service-account token (audience istio-ca) in the authorization metadata as \"Bearer TOKEN\"")
	}
	scheme, token, ok := strings.Cut(v, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errors.New("malformed authorization metadata: want \"Bearer TOKEN\" with a Kubernetes service-account token")
	}
	return token, nil
}

func firstValue(md metadata.MD, key string) string {
	if vs := md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}
