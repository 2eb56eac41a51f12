package server

import "github.com/causeway-mesh/causeway/internal/meshnetworks"

// MeshNetworksKey is the ConfigMap key that holds meshNetworks, as in
// Istio's mesh networks ConfigMap (meshnetworks.Key, which reads it).
const MeshNetworksKey = meshnetworks.Key
