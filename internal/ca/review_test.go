package ca

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestReviewAudiences(t *testing.T) {
	accepted := []string{"istio-ca"}
	tests := []struct {
		name      string
		token     string
		noDefault bool
		want      []string
		wantErr   bool
	}{
		{name: "istio-ca token", token: jwt(`{"aud":["istio-ca"]}`), want: accepted},
		{name: "istio-ca among others", token: jwt(`{"aud":["api","istio-ca"]}`), want: accepted},
		{name: "audience as a string", token: jwt(`{"aud":"istio-ca"}`), want: accepted},
		{name: "default audience", token: jwt(`{"aud":["https://kubernetes.default.svc.cluster.local"]}`), want: nil},
		{name: "legacy token without aud", token: jwt(`{"iss":"kubernetes/serviceaccount"}`), want: nil},
		{name: "default audience refused", token: jwt(`{"aud":["https://kubernetes.default.svc.cluster.local"]}`), noDefault: true, want: accepted},
		{name: "not a JWT", token: "opaque", wantErr: true},
		{name: "bad base64", token: "a.!!!.c", wantErr: true},
		{name: "bad JSON", token: jwt(`{"aud":`), wantErr: true},
		{name: "aud of another type", token: jwt(`{"aud":42}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reviewAudiences(tt.token, accepted, tt.noDefault)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("error %v, want ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("audiences (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseServiceAccount(t *testing.T) {
	tests := []struct {
		user    string
		want    [2]string
		wantErr bool
	}{
		{user: "system:serviceaccount:app:workload", want: [2]string{"app", "workload"}},
		{user: "system:serviceaccount:istio-system:istio-eastwestgateway", want: [2]string{"istio-system", "istio-eastwestgateway"}},
		{user: "alice", wantErr: true},
		{user: "system:serviceaccount:app", wantErr: true},
		{user: "system:serviceaccount::workload", wantErr: true},
		{user: "system:serviceaccount:app:", wantErr: true},
		{user: "system:serviceaccount:app:a:b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			ns, sa, err := ParseServiceAccount(tt.user)
			if tt.wantErr {
				if !errors.Is(err, ErrNotServiceAccount) {
					t.Errorf("error %v, want ErrNotServiceAccount", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := [2]string{ns, sa}; got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestKubeReviewer checks how a TokenReview's answer is read; the real API
// server's answers are in the integration test.
func TestKubeReviewer(t *testing.T) {
	tests := []struct {
		name      string
		status    authnv1.TokenReviewStatus
		apiErr    error
		audiences []string
		want      [2]string
		wantErr   error
		wantMsg   string
	}{
		{name: "service account", audiences: []string{"istio-ca"},
			status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"},
				User: authnv1.UserInfo{Username: "system:serviceaccount:app:workload"}},
			want: [2]string{"app", "workload"}},
		{name: "default audience", audiences: nil,
			status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"https://kubernetes.default.svc.cluster.local"},
				User: authnv1.UserInfo{Username: "system:serviceaccount:app:workload"}},
			want: [2]string{"app", "workload"}},
		{name: "not authenticated", audiences: []string{"istio-ca"},
			status:  authnv1.TokenReviewStatus{Error: "invalid bearer token"},
			wantErr: ErrUnauthenticated, wantMsg: "invalid bearer token"},
		{name: "API server ignored the audiences", audiences: []string{"istio-ca"},
			status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"api"},
				User: authnv1.UserInfo{Username: "system:serviceaccount:app:workload"}},
			wantErr: ErrUnauthenticated, wantMsg: "valid for audiences [api], not for [istio-ca]"},
		{name: "a user", audiences: nil,
			status:  authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice"}},
			wantErr: ErrNotServiceAccount},
		{name: "no permission", apiErr: apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("denied")),
			wantMsg: "system:auth-delegator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset()
			var gotSpec authnv1.TokenReviewSpec
			client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
				gotSpec = tr.Spec
				if tt.apiErr != nil {
					return true, nil, tt.apiErr
				}
				out := tr.DeepCopy()
				out.Status = tt.status
				return true, out, nil
			})
			ns, sa, err := NewKubeReviewer(client).Review(t.Context(), "the-token", tt.audiences)
			if diff := cmp.Diff(authnv1.TokenReviewSpec{Token: "the-token", Audiences: tt.audiences}, gotSpec); diff != "" {
				t.Errorf("TokenReview spec (-want +got):\n%s", diff)
			}
			if tt.wantErr != nil || tt.wantMsg != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("error %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := [2]string{ns, sa}; got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
