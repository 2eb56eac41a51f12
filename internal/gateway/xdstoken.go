package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc/metadata"
)

// maxTokenBytes bounds the token file: a Kubernetes service-account token
// is about a kilobyte.
const maxTokenBytes = 64 << 10

// streamContext adds the credentials of an ADS stream to ctx: the
// service-account token, read again from its file (the kubelet rotates a
// projected token), and the cluster its TokenReview is made in, as
// pilot-agent sends them. Without a token file ctx is returned as it is.
func (c *adsClient) streamContext(ctx context.Context) (context.Context, error) {
	if c.tokenFile == "" {
		return ctx, nil
	}
	token, err := readToken(c.tokenFile)
	if err != nil {
		return ctx, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, "clusterid", c.cluster), nil
}

// readToken reads a token file, at most maxTokenBytes.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("service-account token for the control plane: %w (mount the projected istio-token volume, or fix --xds-token)", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("service-account token %s: %w", path, err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("service-account token %s is over %d bytes: not a Kubernetes token", path, maxTokenBytes)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", errors.New("service-account token " + path + " is empty: wait for the kubelet to write it, or fix --xds-token")
	}
	return token, nil
}
