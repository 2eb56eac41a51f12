// Command etcd is the etcd server the integration tests and the bench run,
// built from the go.etcd.io/etcd/server/v3 version pinned in this folder's
// go.mod (see build.sh). It does what etcd's own main.go does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
