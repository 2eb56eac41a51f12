package cli

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/causeway-mesh/causeway/internal/install"
)

// TestGeneratedArgsParse: the command lines that `causeway manifest
// generate` writes into Deployments are accepted by this binary's own
// commands, so a generated control plane or gateway never exits with
// "unknown flag".
func TestGeneratedArgsParse(t *testing.T) {
	checked := map[string]bool{}
	for _, p := range install.Profiles() {
		objs, err := install.Generate(p, install.Values{
			ClusterID: "cluster1", Network: "network1", Revision: "1-11-4", Image: "example.com/causeway:test",
			CustomHosts: []string{"istiod.example.com"}, RemotePilotAddress: "192.0.2.10",
			WebhookHost: "eastwest.example.com",
		})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, o := range objs {
			d, ok := o.(*appsv1.Deployment)
			if !ok {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				root := NewRootCommand()
				cmd, rest, err := root.Find(c.Args)
				if err != nil {
					t.Fatalf("%s: deployment %s: %v", p, d.Name, err)
				}
				if cmd == root {
					t.Fatalf("%s: deployment %s: args %q name no subcommand", p, d.Name, c.Args)
				}
				checked[cmd.Name()] = true
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%s: deployment %s: `causeway %s` refuses %q: %v", p, d.Name, cmd.Name(), rest, err)
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Errorf("%s: deployment %s: %v", p, d.Name, err)
				}
			}
		}
	}
	if !checked["serve"] || !checked["gateway"] {
		t.Errorf("checked the command lines of %v, want serve and gateway", checked)
	}
}
