// Command ktestenv runs a real, local Kubernetes control plane for tests:
// etcd (embedded), kube-apiserver, kube-controller-manager and kube-scheduler, all built
// from the upstream Go modules into this one binary. Every component runs as its own
// process (a subcommand of this binary) so that one of them, typically the API server,
// can be restarted against the same etcd.
//
//	ktestenv up --dir DIR [--kwok-bin PATH --kwok-config PATH] [--real-node]
//	ktestenv image --name NAME --out FILE (--busybox BIN | --rootfs-tar TAR | --add SRC=/DEST)
//	ktestenv etcd --data-dir DIR --client-port N --peer-port M
//	ktestenv apiserver [kube-apiserver flags]
//	ktestenv controller-manager [kube-controller-manager flags]
//	ktestenv scheduler [kube-scheduler flags]
//	ktestenv version
//
// Everything listens on 127.0.0.1 only.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubeapiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kubescheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/spf13/cobra"
)

const usage = `usage: ktestenv COMMAND [flags]

commands:
  up --dir DIR        start etcd, kube-apiserver, kube-controller-manager, kube-scheduler
                      (and kwok with --kwok-bin/--kwok-config) on free 127.0.0.1 ports,
                      write DIR/kubeconfig, print its path when /readyz answers;
                      SIGTERM/SIGINT stops everything, SIGUSR1 restarts the API server;
                      --real-node adds one real node (containerd, kubelet, kube-proxy,
                      CoreDNS; needs root) and prints the path once the node is Ready
  image               write an OCI image archive from local files (no registry)
  etcd                embedded etcd (go.etcd.io/etcd/server/v3/embed)
  apiserver           kube-apiserver (flags as upstream)
  controller-manager  kube-controller-manager (flags as upstream)
  scheduler           kube-scheduler (flags as upstream)
  version             print component versions
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	sub, args := os.Args[1], os.Args[2:]
	var cmd *cobra.Command
	switch sub {
	case "up":
		os.Exit(runUp(args))
	case "etcd":
		os.Exit(runEtcd(args))
	case "image":
		os.Exit(runImage(args))
	case "version":
		printVersion()
		return
	case "apiserver", "kube-apiserver":
		cmd = kubeapiserver.NewAPIServerCommand()
	case "controller-manager", "kube-controller-manager":
		cmd = kcm.NewControllerManagerCommand()
	case "scheduler", "kube-scheduler":
		cmd = kubescheduler.NewSchedulerCommand()
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "ktestenv: unknown command %q\n\n%s", sub, usage)
		os.Exit(2)
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}
