package main

// The real node (`up --real-node`): containerd + runc (Debian), CNI bridge (Debian's
// containernetworking-plugins), a kubelet, kube-proxy (iptables) and CoreDNS, all on this
// machine, on a private bridge network that only this node uses. One real node per machine at
// a time (a lock under /run): kube-proxy's iptables chains and containerd's pod network
// namespaces are machine-wide. Beside the node, a registry (Debian's docker-registry, the
// distribution registry) on the node's address, which containerd pulls from over plain HTTP
// (a hosts.toml for that host:port) and pods cannot reach (an INPUT rule drops it).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// Fixed paths: a crashed run's leftovers are found (and cleaned) by the next run.
	nodeRunDir   = "/run/ktestenv-node"
	nodeLockFile = "/run/lock/ktestenv-real-node.lock"
	nodeName     = "ktestenv-node"
	pauseImage   = "ktestenv.local/pause:1"
	guardChain   = "KTESTENV-NODE"
	inGuardChain = "KTESTENV-NODE-IN" // from the pods to this machine: the registry's port is closed
	clusterDNSIP = "10.96.0.10"
)

type nodeOptions struct {
	binDir         string // kubelet, kube-proxy, coredns, images/*.tar
	containerdBin  string
	ctrBin         string
	runcBin        string
	cniBinDir      string
	timeout        time.Duration
	kubeletArgs    []string
	kubeProxyArgs  []string
	extraImageTars []string
	registryBin    string // docker-registry; "" with noRegistry
	noRegistry     bool
}

type node struct {
	opts       nodeOptions
	dir        string // DIR/node
	run        string // nodeRunDir
	sock       string
	bridge     string
	subnet     *net.IPNet
	gateway    net.IP
	kubeconfig string
	lock       *os.File
	fwdBefore  string // net.ipv4.ip_forward before we set it

	registryAddr string // host:port of the registry beside the node ("" without one)

	containerd, kubelet, kubeProxy, coredns, registry *component
	comps                                             []*component
	started                                           []*component
	mounted                                           bool
	guardAdded                                        bool
	inGuardAdded                                      bool
}

func (n *node) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "ktestenv node: "+format+"\n", a...)
}

func lookBin(candidates ...string) string {
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if strings.Contains(c, "/") {
			if st, err := os.Stat(c); err == nil && !st.IsDir() {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// checkNodePrereqs names every missing piece at once (binaries, Debian packages, images).
func checkNodePrereqs(o *nodeOptions) error {
	var missing []string
	need := func(path, what string) {
		if path == "" {
			missing = append(missing, what)
		} else if _, err := os.Stat(path); err != nil {
			missing = append(missing, what+" ("+path+")")
		}
	}
	need(lookBin(filepath.Join(o.binDir, "kubelet")), "bin/kubelet (make ktestenv)")
	need(lookBin(filepath.Join(o.binDir, "kube-proxy")), "bin/kube-proxy (make ktestenv)")
	need(lookBin(filepath.Join(o.binDir, "coredns")), "bin/coredns (make ktestenv)")
	o.containerdBin = lookBin(o.containerdBin, filepath.Join(o.binDir, "containerd"), "containerd")
	need(o.containerdBin, "containerd (Debian package containerd)")
	o.ctrBin = lookBin(o.ctrBin, filepath.Join(o.binDir, "ctr"), "ctr")
	need(o.ctrBin, "ctr (Debian package containerd)")
	o.runcBin = lookBin(o.runcBin, "runc")
	need(o.runcBin, "runc (Debian package runc)")
	if o.cniBinDir == "" {
		o.cniBinDir = "/usr/lib/cni"
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		need(lookBin(filepath.Join(o.cniBinDir, p)), "CNI plugin "+p+" (Debian package containernetworking-plugins)")
	}
	need(lookBin("iptables"), "iptables (Debian package iptables)")
	need(lookBin("ip"), "ip (Debian package iproute2)")
	if !o.noRegistry {
		o.registryBin = lookBin(o.registryBin, "docker-registry")
		need(o.registryBin, "docker-registry (Debian package docker-registry; or --no-registry)")
	}
	for _, img := range []string{"pause.tar", "busybox.tar", "python.tar"} {
		need(lookBin(filepath.Join(o.binDir, "images", img)), "bin/images/"+img+" (make ktestenv)")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (containerd, the bridge and iptables need it)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the real node needs: %s", strings.Join(missing, "; "))
	}
	return nil
}

// takeNodeLock waits (up to timeout) for the machine-wide real-node lock.
func takeNodeLock(timeout time.Duration) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(nodeLockFile), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(nodeLockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(nodeLockFile)
			f.Close()
			return nil, fmt.Errorf("another real node runs on this machine (pid %s holds %s)",
				strings.TrimSpace(string(holder)), nodeLockFile)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pickSubnet chooses a /24 for pods that no route of this machine uses yet.
func pickSubnet() (*net.IPNet, error) {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route: %w", err)
	}
	routes := string(out)
	for third := 0; third < 250; third++ {
		cidr := fmt.Sprintf("10.244.%d.0/24", third)
		if !strings.Contains(routes, fmt.Sprintf("10.244.%d.", third)) && !strings.Contains(routes, "10.244.0.0/16") {
			_, n, _ := net.ParseCIDR(cidr)
			return n, nil
		}
	}
	return nil, errors.New("no free 10.244.x.0/24 subnet for pods")
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func newNode(dir, kubeconfig string, o nodeOptions) *node {
	sum := sha256.Sum256([]byte(dir))
	return &node{
		opts: o, dir: filepath.Join(dir, "node"), run: nodeRunDir,
		sock:       filepath.Join(nodeRunDir, "containerd.sock"),
		bridge:     "ktenv" + hex.EncodeToString(sum[:])[:6],
		kubeconfig: kubeconfig,
	}
}

// prepare takes the lock, cleans a crashed run's leftovers, writes every config file and
// creates the bridge with the gateway address (the node's IP).
func (n *node) prepare(p *pki, kubeletPort int) error {
	lock, err := takeNodeLock(n.opts.timeout)
	if err != nil {
		return err
	}
	n.lock = lock
	n.cleanupLeftovers("a previous run")
	if n.subnet, err = pickSubnet(); err != nil {
		return err
	}
	n.gateway = make(net.IP, 4)
	copy(n.gateway, n.subnet.IP.To4())
	n.gateway[3] = 1
	gw := n.gateway.String()
	for _, d := range []string{n.run, n.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// What a killed run leaves for the next one to undo: where its mounts are, and the
	// machine's ip_forward before any run changed it.
	if err := os.WriteFile(filepath.Join(n.run, "node-dir"), []byte(n.dir), 0o644); err != nil {
		return err
	}
	// Everything the node mounts lives under these two directories; making them private
	// mount points keeps those mounts out of the rest of the machine, and lets teardown
	// find them all.
	for _, d := range []string{n.run, n.dir} {
		if err := run("mount", "--bind", d, d); err != nil {
			return err
		}
		if err := run("mount", "--make-rprivate", d); err != nil {
			return err
		}
	}
	n.mounted = true

	// The bridge exists before the kubelet so that the node's IP is the gateway's: an address
	// of this node's own network, reachable from the host (API server -> kubelet) and from pods.
	if err := run("ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return err
	}
	ones, _ := n.subnet.Mask.Size()
	if err := run("ip", "addr", "add", fmt.Sprintf("%s/%d", gw, ones), "dev", n.bridge); err != nil {
		return err
	}
	if err := run("ip", "link", "set", n.bridge, "up"); err != nil {
		return err
	}
	// Pods reach Services through the host (DNAT, then forwarded back onto the bridge), so
	// forwarding is on; the guard chain keeps that forwarding to this bridge: nothing from
	// the pods leaves it for another interface, nothing from elsewhere is forwarded into it.
	if n.fwdBefore == "" {
		fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		n.fwdBefore = strings.TrimSpace(string(fwd))
	}
	_ = os.WriteFile(filepath.Join(n.run, "ip-forward"), []byte(n.fwdBefore), 0o644)
	_ = run("iptables", "-w", "-N", guardChain)
	if err := run("iptables", "-w", "-F", guardChain); err != nil {
		return err
	}
	for _, rule := range [][]string{
		{"-i", n.bridge, "-o", n.bridge, "-j", "RETURN"},
		{"-i", n.bridge, "-j", "DROP"},
		{"-o", n.bridge, "-j", "DROP"},
	} {
		if err := run("iptables", append([]string{"-w", "-A", guardChain}, rule...)...); err != nil {
			return err
		}
	}
	if err := run("iptables", "-w", "-I", "FORWARD", "1", "-j", guardChain); err != nil {
		return err
	}
	n.guardAdded = true
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}

	cd := filepath.Join(n.dir, "containerd")
	if err := writeFile(filepath.Join(cd, "config.toml"), fmt.Sprintf(`# written by ktestenv up --real-node
version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Without CAP_SYS_RESOURCE a container cannot lower its oom_score_adj below ours.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
  # Per-registry settings (hosts.toml), e.g. plain HTTP for the registry beside the node.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(cd, "root"), filepath.Join(n.run, "state"), n.sock, n.sock+".ttrpc",
		filepath.Join(cd, "opt"), pauseImage, n.opts.runcBin, filepath.Join(n.run, "runc"),
		n.opts.cniBinDir, filepath.Join(n.dir, "cni", "net.d"), filepath.Join(cd, "certs.d"))); err != nil {
		return err
	}
	if !n.opts.noRegistry {
		if err := n.prepareRegistry(cd); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	if err := writeFile(filepath.Join(n.dir, "cni", "net.d", "10-ktestenv.conflist"), fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "ktestenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.bridge, filepath.Join(n.run, "ipam"), n.subnet.String(), gw)); err != nil {
		return err
	}
	// Pods resolve through cluster DNS only (no search domains or servers of the host).
	if err := writeFile(filepath.Join(n.dir, "resolv.conf"), "nameserver "+gw+"\n"); err != nil {
		return err
	}
	if err := issueNodeCert(p, filepath.Join(n.dir, "pki"), gw); err != nil {
		return err
	}
	kd := filepath.Join(n.dir, "kubelet")
	if err := writeFile(filepath.Join(n.dir, "kubelet-config.yaml"), fmt.Sprintf(`# written by ktestenv up --real-node
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
# Test-only: this machine has cgroup v1 and no per-QoS hierarchy of its own.
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [%s]
resolvConf: %s
hairpinMode: hairpin-veth
serializeImagePulls: false
registerNode: true
maxPods: 110
podPidsLimit: -1
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 4s
shutdownGracePeriod: 0s
containerLogMaxSize: 10Mi
rotateCertificates: false
serverTLSBootstrap: false
`, gw, kubeletPort, filepath.Join(n.dir, "pki", "kubelet.crt"), filepath.Join(n.dir, "pki", "kubelet.key"), p.caCert,
		n.sock, clusterDNSIP, filepath.Join(n.dir, "resolv.conf"))); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(n.dir, "kube-proxy-config.yaml"), fmt.Sprintf(`# written by ktestenv up --real-node
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: ""
metricsBindAddress: ""
mode: iptables
clusterCIDR: %s
# NodePorts only on this node's own address, never on the machine's other interfaces.
nodePortAddresses: [%s/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 0s}
`, n.kubeconfig, nodeName, gw, n.subnet.String(), gw)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(n.dir, "Corefile"), fmt.Sprintf(`# written by ktestenv up --real-node
cluster.local:%[2]d in-addr.arpa:%[2]d {
    bind %[1]s
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig %[3]s
        pods insecure
        fallthrough in-addr.arpa
    }
}
.:%[2]d {
    bind %[1]s
    errors
    # No upstream: pods reach nothing outside this node, so other names do not exist.
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`, gw, n.corednsPort(), n.kubeconfig)); err != nil {
		return err
	}

	logPath := func(name string) string { return filepath.Join(filepath.Dir(n.dir), "logs", name+".log") }
	n.containerd = &component{name: "containerd", path: n.opts.containerdBin, log: logPath("containerd"),
		args: []string{"--config", filepath.Join(cd, "config.toml")}}
	n.kubelet = &component{name: "kubelet", path: filepath.Join(n.opts.binDir, "kubelet"), log: logPath("kubelet"),
		args: append([]string{
			"--config=" + filepath.Join(n.dir, "kubelet-config.yaml"),
			"--kubeconfig=" + n.kubeconfig,
			"--hostname-override=" + nodeName,
			"--node-ip=" + gw,
			"--root-dir=" + kd,
			"--cert-dir=" + filepath.Join(n.dir, "pki"),
			"--v=1",
		}, n.opts.kubeletArgs...)}
	n.kubeProxy = &component{name: "kube-proxy", path: filepath.Join(n.opts.binDir, "kube-proxy"), log: logPath("kube-proxy"),
		args: append([]string{"--config=" + filepath.Join(n.dir, "kube-proxy-config.yaml"), "--v=1"}, n.opts.kubeProxyArgs...)}
	n.coredns = &component{name: "coredns", path: filepath.Join(n.opts.binDir, "coredns"), log: logPath("coredns"),
		args: []string{"-conf", filepath.Join(n.dir, "Corefile")}}
	n.comps = []*component{n.containerd, n.coredns, n.kubeProxy, n.kubelet}
	if n.registry != nil {
		n.comps = append([]*component{n.registry}, n.comps...)
	}
	return nil
}

// prepareRegistry writes the registry's config (storage under DIR/node/registry, listening on a
// free port of the node's address), containerd's hosts.toml for it (plain HTTP, pull and
// resolve), and closes that port to the pods: only this machine (the console pushing, containerd
// pulling) reaches it, so a tenant's pod can never replace another's image.
func (n *node) prepareRegistry(cd string) error {
	gw := n.gateway.String()
	l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n.registryAddr = net.JoinHostPort(gw, strconv.Itoa(port))
	cfg := filepath.Join(n.dir, "registry.yml")
	if err := writeFile(cfg, fmt.Sprintf(`# written by ktestenv up --real-node
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
`, filepath.Join(n.dir, "registry"), n.registryAddr)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cd, "certs.d", n.registryAddr, "hosts.toml"), fmt.Sprintf(`# written by ktestenv up --real-node
server = "http://%[1]s"
[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, n.registryAddr)); err != nil {
		return err
	}
	_ = run("iptables", "-w", "-N", inGuardChain)
	if err := run("iptables", "-w", "-F", inGuardChain); err != nil {
		return err
	}
	if err := run("iptables", "-w", "-A", inGuardChain, "-i", n.bridge, "-p", "tcp", "--dport", strconv.Itoa(port),
		"-j", "DROP"); err != nil {
		return err
	}
	if err := run("iptables", "-w", "-I", "INPUT", "1", "-j", inGuardChain); err != nil {
		return err
	}
	n.inGuardAdded = true
	logPath := filepath.Join(filepath.Dir(n.dir), "logs", "registry.log")
	n.registry = &component{name: "registry", path: n.opts.registryBin, log: logPath, args: []string{"serve", cfg}}
	return nil
}

// start runs containerd, imports the images, then CoreDNS, kube-proxy and the kubelet, and
// creates the kube-dns Service (10.96.0.10) in front of CoreDNS.
func (n *node) start(ctx context.Context, onStart func(*component)) error {
	if n.registry != nil {
		if err := n.registry.start(); err != nil {
			return err
		}
		n.started = append(n.started, n.registry)
		onStart(n.registry)
		httpc := &http.Client{Timeout: 2 * time.Second}
		if err := waitFor(ctx, n.opts.timeout, n.registry.done, "the registry", func() error {
			resp, err := httpc.Get("http://" + n.registryAddr + "/v2/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /v2/: %d", resp.StatusCode)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("registry: %w (see %s)", err, n.registry.log)
		}
	}
	if err := n.containerd.start(); err != nil {
		return err
	}
	n.started = append(n.started, n.containerd)
	onStart(n.containerd)
	if err := waitFor(ctx, n.opts.timeout, n.containerd.done, "containerd socket", func() error {
		return run(n.opts.ctrBin, "--address", n.sock, "version")
	}); err != nil {
		return fmt.Errorf("containerd: %w (see %s)", err, n.containerd.log)
	}
	images, _ := filepath.Glob(filepath.Join(n.opts.binDir, "images", "*.tar"))
	images = append(images, n.opts.extraImageTars...)
	sort.Strings(images)
	for _, img := range images {
		t := time.Now()
		if err := run(n.opts.ctrBin, "--address", n.sock, "-n", "k8s.io", "images", "import", "--no-unpack", img); err != nil {
			return fmt.Errorf("import %s: %w", img, err)
		}
		n.logf("imported %s in %s", filepath.Base(img), time.Since(t).Round(time.Millisecond))
	}
	for _, c := range []*component{n.coredns, n.kubeProxy, n.kubelet} {
		if err := c.start(); err != nil {
			return err
		}
		n.started = append(n.started, c)
		onStart(c)
	}
	cs, err := n.client()
	if err != nil {
		return err
	}
	if err := n.dnsService(ctx, cs); err != nil {
		return fmt.Errorf("kube-dns Service: %w", err)
	}
	return waitFor(ctx, n.opts.timeout, n.kubelet.done, "node "+nodeName+" Ready", func() error {
		nd, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range nd.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
}

func (n *node) client() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// dnsService: CoreDNS runs on the host (on the gateway address); the kube-dns Service with a
// hand-made EndpointSlice routes the usual cluster DNS address to it through kube-proxy.
func (n *node) dnsService(ctx context.Context, cs *kubernetes.Clientset) error {
	port := int32(n.corednsPort())
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system",
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
		Spec: corev1.ServiceSpec{ClusterIP: clusterDNSIP, Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intOrPort(port)},
			{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intOrPort(port)},
		}},
	}
	if err := waitFor(ctx, n.opts.timeout, nil, "kube-system namespace", func() error {
		_, err := cs.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	return createDNSEndpoints(ctx, cs, n.gateway.String(), port)
}

func (n *node) corednsPort() int { return 53 }

func waitFor(ctx context.Context, timeout time.Duration, exited <-chan struct{}, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout after %s waiting for %s (last: %v)", timeout, what, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited while waiting for %s (last: %v)", what, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop tears the node down in order: pods (through the API, so the kubelet stops them
// gracefully), the kubelet, every remaining pod sandbox (CRI: stops containers, releases the
// network), kube-proxy (and its iptables rules), CoreDNS, containerd, leftover shims and
// containers, the bridge and the guard chain, then every mount under the node's directories.
func (n *node) stop() {
	if n.lock == nil {
		return // never got the machine's lock: nothing here is ours
	}
	if n.kubelet != nil && n.kubelet.pid() != 0 {
		n.deletePods(20 * time.Second)
	}
	if n.kubelet != nil {
		n.kubelet.stop(15 * time.Second)
	}
	if n.containerd != nil && n.containerd.pid() != 0 {
		n.removeSandboxes(30 * time.Second)
	}
	if n.kubeProxy != nil {
		n.kubeProxy.stop(10 * time.Second)
		if n.kubeProxy.pid() != 0 {
			if err := run(n.kubeProxy.path, "--cleanup", "--config="+filepath.Join(n.dir, "kube-proxy-config.yaml")); err != nil {
				n.logf("kube-proxy --cleanup: %v", err)
			}
		}
	}
	if n.coredns != nil {
		n.coredns.stop(5 * time.Second)
	}
	if n.containerd != nil {
		n.containerd.stop(15 * time.Second)
	}
	if n.registry != nil {
		n.registry.stop(10 * time.Second)
	}
	n.cleanupLeftovers("this run")
	if n.fwdBefore != "" {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(n.fwdBefore), 0o644)
	}
	if n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
}

func (n *node) deletePods(grace time.Duration) {
	cs, err := n.client()
	if err != nil {
		n.logf("pods: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel()
	sel := metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName}
	pods, err := cs.CoreV1().Pods("").List(ctx, sel)
	if err != nil {
		n.logf("pods: list: %v", err)
		return
	}
	zero := int64(1)
	for _, p := range pods.Items {
		_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	_ = waitFor(ctx, grace, nil, "pods to stop", func() error {
		l, err := cs.CoreV1().Pods("").List(ctx, sel)
		if err != nil {
			return err
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("%d pods left", len(l.Items))
		}
		return nil
	})
}

// removeSandboxes stops and removes every pod sandbox left in containerd, through the CRI.
func (n *node) removeSandboxes(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.logf("CRI: %v", err)
		return
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	resp, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		n.logf("CRI: list sandboxes: %v", err)
		return
	}
	for _, sb := range resp.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			n.logf("CRI: stop sandbox %s: %v", sb.Metadata.GetName(), err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			n.logf("CRI: remove sandbox %s: %v", sb.Metadata.GetName(), err)
		}
	}
	if len(resp.Items) > 0 {
		n.logf("removed %d pod sandboxes", len(resp.Items))
	}
}

// cleanupLeftovers removes whatever a node run leaves when it is killed: shims started by
// containerd on our socket and the containers under them (runc root of our own), the
// bridges, the guard chain, kube-proxy's rules, network namespaces of our sandboxes, and
// mounts under our directories. Safe to run when nothing is left.
func (n *node) cleanupLeftovers(whose string) {
	if whose != "this run" {
		if b, err := os.ReadFile(filepath.Join(n.run, "ip-forward")); err == nil && len(b) > 0 {
			n.fwdBefore = strings.TrimSpace(string(b)) // the value before the killed run set it
		}
		if b, err := os.ReadFile(filepath.Join(n.run, "node-dir")); err == nil && len(b) > 0 {
			for _, m := range mountsUnder(strings.TrimSpace(string(b))) {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
	}
	// Shims are found by the containerd address in their command line, which is ours alone.
	for _, pid := range pidsWithArg("-address", n.sock) {
		n.logf("%s: killing leftover shim %d and its containers", whose, pid)
		for _, child := range childrenOf(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	runcRoot := filepath.Join(n.run, "runc")
	if ents, err := os.ReadDir(runcRoot); err == nil && n.opts.runcBin != "" {
		for _, ns := range ents {
			root := filepath.Join(runcRoot, ns.Name())
			cs, _ := os.ReadDir(root)
			for _, c := range cs {
				_ = exec.Command(n.opts.runcBin, "--root", root, "kill", c.Name(), "KILL").Run()
				time.Sleep(50 * time.Millisecond)
				_ = exec.Command(n.opts.runcBin, "--root", root, "delete", "--force", c.Name()).Run()
			}
		}
	}
	// Network namespaces of our sandboxes (containerd 1.6 puts them in /var/run/netns,
	// named cni-<uuid>); ours are those recorded in our IPAM directory's netns list.
	for _, ns := range ourNetns() {
		_ = syscall.Unmount(ns, syscall.MNT_DETACH)
		_ = os.Remove(ns)
	}
	if n.guardAdded || whose != "this run" {
		for run("iptables", "-w", "-D", "FORWARD", "-j", guardChain) == nil {
		}
		_ = run("iptables", "-w", "-F", guardChain)
		_ = run("iptables", "-w", "-X", guardChain)
		n.guardAdded = false
	}
	if n.inGuardAdded || whose != "this run" {
		for run("iptables", "-w", "-D", "INPUT", "-j", inGuardChain) == nil {
		}
		_ = run("iptables", "-w", "-F", inGuardChain)
		_ = run("iptables", "-w", "-X", inGuardChain)
		n.inGuardAdded = false
	}
	// Bridges of ours (by prefix: one real node per machine, we hold the lock).
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && strings.HasPrefix(f[1], "ktenv") {
				name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
				if err := run("ip", "link", "del", name); err != nil {
					n.logf("%s: %v", whose, err)
				}
			}
		}
	}
	// The KUBE-* chains of kube-proxy (left by a killed run) and of the kubelet (canaries, the
	// localnet firewall) in every table: one real node per machine, and we hold its lock.
	removeKubeChains()
	// Mounts under our directories, deepest first; then the directories' own bind mounts.
	dirs := []string{n.run}
	if whose == "this run" {
		dirs = append(dirs, n.dir)
	}
	for _, d := range dirs {
		for _, m := range mountsUnder(d) {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				n.logf("umount %s: %v", m, err)
			}
		}
	}
	if whose == "this run" {
		n.mounted = false
	}
	_ = os.RemoveAll(n.run)
	removeCgroups()
}

func removeKubeChains() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if lookBin(ipt) == "" {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			out, err := exec.Command(ipt, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) >= 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, "-j KUBE-"):
					// iptables -S quotes arguments as iptables accepts them: re-split by the shell.
					_ = exec.Command("sh", "-c", ipt+" -w -t "+table+" -D "+strings.TrimPrefix(line, "-A ")).Run()
				}
			}
			for _, c := range chains {
				_ = exec.Command(ipt, "-w", "-t", table, "-F", c).Run()
			}
			for _, c := range chains {
				_ = exec.Command(ipt, "-w", "-t", table, "-X", c).Run()
			}
		}
	}
}

// ourNetns: containerd (1.6) names a sandbox's network namespace /var/run/netns/cni-<uuid>
// and removes it with the sandbox; after a kill, the leftovers are the cni-* namespaces that
// no process uses (we hold the machine's real-node lock; nothing else here makes cni-* ones).
func ourNetns() []string {
	var out []string
	ents, _ := os.ReadDir("/var/run/netns")
	for _, e := range ents {
		p := filepath.Join("/var/run/netns", e.Name())
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		// No process in it (only the bind mount): removing it also removes its veth.
		if !netnsInUse(p) {
			out = append(out, p)
		}
	}
	return out
}

func netnsInUse(path string) bool {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return false
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		var s syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", p.Name(), "ns", "net"), &s) == nil && s.Ino == st.Ino && s.Dev == st.Dev {
			return true
		}
	}
	return false
}

// removeCgroups removes the (empty) cgroups containerd created for our pods: with
// cgroupsPerQOS off, the kubelet puts pods under /kubepods* or the sandbox id at the root.
func removeCgroups() {
	base := "/sys/fs/cgroup"
	ctrls, _ := os.ReadDir(base)
	for _, c := range ctrls {
		for _, top := range []string{"k8s.io"} {
			root := filepath.Join(base, c.Name(), top)
			var dirs []string
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				_ = syscall.Rmdir(dirs[i])
			}
		}
	}
}

func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			ms = append(ms, mp)
		}
	}
	// Deepest (and latest) first.
	sort.SliceStable(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func pidsWithArg(flag, value string) []int {
	var pids []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == value {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func childrenOf(pid int) []int {
	var kids []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		c, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			if pp, _ := strconv.Atoi(f[1]); pp == pid {
				kids = append(kids, c)
			}
		}
	}
	return kids
}

func intOrPort(p int32) intstr.IntOrString { return intstr.FromInt32(p) }

// createDNSEndpoints points the kube-dns Service at CoreDNS on the gateway address.
func createDNSEndpoints(ctx context.Context, cs *kubernetes.Clientset, ip string, port int32) error {
	ready := true
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns, dnsTCP := "dns", "dns-tcp"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-coredns", Namespace: "kube-system",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: "ktestenv"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &dns, Protocol: &udp, Port: &port}, {Name: &dnsTCP, Protocol: &tcp, Port: &port}},
	}
	_, err := cs.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, es, metav1.CreateOptions{})
	return err
}

// issueNodeCert writes the kubelet's serving certificate (for the node's IP), signed by the CA.
func issueNodeCert(p *pki, dir, ip string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caPair, err := tls.LoadX509KeyPair(p.caCert, p.caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		return err
	}
	k, err := newKey()
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: nodeName},
		NotBefore: now, NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{nodeName, "localhost"},
		IPAddresses: []net.IP{net.ParseIP(ip), net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caPair.PrivateKey)
	if err != nil {
		return err
	}
	if _, err := writePEM(filepath.Join(dir, "kubelet.crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	_, err = writeKey(filepath.Join(dir, "kubelet.key"), k)
	return err
}
