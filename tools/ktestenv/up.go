package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	serviceClusterIPRange = "10.96.0.0/16"
	serviceClusterFirstIP = "10.96.0.1"
	// Nodes carrying this annotation are managed by kwok (see --kwok-bin).
	kwokNodeSelector = "kwok.x-k8s.io/node=fake"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// component is one child process of `up`.
type component struct {
	name string
	path string
	args []string
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	expected bool          // exit was requested (stop/restart)
}

func (c *component) start() error {
	lf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n==== ktestenv: starting %s at %s\n%s %s\n\n", c.name, time.Now().Format(time.RFC3339),
		c.path, strings.Join(c.args, " "))
	cmd := exec.Command(c.path, c.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Stdin = nil
	// Own process group (a terminal ^C reaches only `up`, which stops children in order);
	// the kernel kills the child should `up` die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.done, c.expected = cmd, done, false
	c.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(done)
	}()
	return nil
}

func (c *component) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// stop sends SIGTERM, then SIGKILL after grace.
func (c *component) stop(grace time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.expected = true
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "ktestenv: %s did not stop within %s, killing\n", c.name, grace)
		_ = cmd.Process.Kill()
		<-done
	}
}

type state struct {
	PID               int               `json:"pid"`
	Dir               string            `json:"dir"`
	Kubeconfig        string            `json:"kubeconfig"`
	Server            string            `json:"server"`
	EtcdEndpoint      string            `json:"etcd_endpoint"`
	Ready             bool              `json:"ready"`
	APIServerRestarts int               `json:"apiserver_restarts"`
	PIDs              map[string]int    `json:"pids"`
	Node              string            `json:"node,omitempty"`
	NodeReadySeconds  float64           `json:"node_ready_seconds,omitempty"`
	Registry          string            `json:"registry,omitempty"` // host:port of the registry beside the real node
	Logs              map[string]string `json:"logs"`
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until check returns nil, the process exits, or timeout.
func waitHTTP(ctx context.Context, client *http.Client, url string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited while waiting for %s (last: %v)", url, last)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s waiting for %s (last: %v)", timeout, url, last)
}

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", "", "working directory: kubeconfig, pki/, etcd/, logs/, ktestenv.json (required)")
	kwokBin := fs.String("kwok-bin", "", "path of the kwok binary; empty: do not run kwok")
	kwokConfig := fs.String("kwok-config", "", "kwok --config file (stages); default: kwok.yaml next to --kwok-bin")
	timeout := fs.Duration("timeout", 120*time.Second, "start-up timeout")
	exitWithParent := fs.Bool("exit-with-parent", false, "stop everything when the parent process (e.g. pytest) dies")
	realNode := fs.Bool("real-node", false, "also run one real node: containerd, kubelet, kube-proxy, CoreDNS (needs root)")
	nodeBinDir := fs.String("node-bin-dir", "", "where kubelet, kube-proxy, coredns and images/ are (default: next to ktestenv)")
	containerdBin := fs.String("containerd-bin", "", "containerd binary (default: bin/containerd if built, else containerd on PATH)")
	noRegistry := fs.Bool("no-registry", false, "real node without the registry beside it (docker-registry)")
	var apiArgs, kcmArgs, schedArgs, kwokArgs, kubeletArgs, kubeProxyArgs, images multiFlag
	fs.Var(&kubeletArgs, "kubelet-arg", "extra kubelet flag (repeatable)")
	fs.Var(&kubeProxyArgs, "kube-proxy-arg", "extra kube-proxy flag (repeatable)")
	fs.Var(&images, "image", "extra OCI image archive to import into the real node (repeatable)")
	fs.Var(&apiArgs, "apiserver-arg", "extra kube-apiserver flag (repeatable)")
	fs.Var(&kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	fs.Var(&schedArgs, "scheduler-arg", "extra kube-scheduler flag (repeatable)")
	fs.Var(&kwokArgs, "kwok-arg", "extra kwok flag (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "up: --dir is required")
		return 2
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "up: %v\n", err)
		return 1
	}
	if *exitWithParent {
		parent := os.Getppid()
		go func() {
			for range time.Tick(500 * time.Millisecond) {
				if os.Getppid() != parent {
					fmt.Fprintln(os.Stderr, "ktestenv: parent process exited")
					_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
					return
				}
			}
		}()
	}
	var nodeOpts *nodeOptions
	if *realNode {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "up: %v\n", err)
			return 1
		}
		o := nodeOptions{binDir: *nodeBinDir, containerdBin: *containerdBin, timeout: *timeout,
			kubeletArgs: kubeletArgs, kubeProxyArgs: kubeProxyArgs, extraImageTars: images, noRegistry: *noRegistry}
		if o.binDir == "" {
			o.binDir = filepath.Dir(self)
		}
		if err := checkNodePrereqs(&o); err != nil {
			fmt.Fprintf(os.Stderr, "ktestenv up --real-node: %v\n", err)
			return 3
		}
		nodeOpts = &o
	}
	if err := up(d, *kwokBin, *kwokConfig, *timeout, apiArgs, kcmArgs, schedArgs, kwokArgs, nodeOpts); err != nil {
		fmt.Fprintf(os.Stderr, "ktestenv up: %v\n", err)
		return 1
	}
	return 0
}

func up(dir, kwokBin, kwokConfig string, timeout time.Duration, apiArgs, kcmArgs, schedArgs, kwokArgs []string, nodeOpts *nodeOptions) error {
	start := time.Now()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, sub := range []string{"logs", "etcd"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	p, err := generatePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, p); err != nil {
		return err
	}
	logPath := func(n string) string { return filepath.Join(dir, "logs", n+".log") }
	if nodeOpts != nil {
		// The API server reaches the kubelet at the node's InternalIP (an address of the node's
		// own bridge) and checks its serving certificate against our CA.
		apiArgs = append([]string{
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-certificate-authority=" + p.caCert,
			"--kubelet-client-certificate=" + p.adminCert,
			"--kubelet-client-key=" + p.adminKey,
		}, apiArgs...)
	}

	etcd := &component{name: "etcd", path: self, log: logPath("etcd"), args: []string{
		"etcd", "--data-dir", filepath.Join(dir, "etcd"),
		"--client-port", strconv.Itoa(etcdClient), "--peer-port", strconv.Itoa(etcdPeer),
	}}
	apiserver := &component{name: "kube-apiserver", path: self, log: logPath("kube-apiserver"), args: append([]string{
		"apiserver",
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + p.dir,
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + serviceClusterIPRange,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// The "kubernetes" Service would point at 127.0.0.1, which Endpoints validation rejects.
		"--endpoint-reconciler-type=none",
		// On SIGTERM drain in-flight requests, then give open watches 2s (default: up to 60s).
		"--shutdown-send-retry-after=true",
		"--profiling=false",
	}, apiArgs...)}
	controllerManager := &component{name: "kube-controller-manager", path: self, log: logPath("kube-controller-manager"),
		args: append([]string{
			"controller-manager",
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--leader-elect=false",
			"--use-service-account-credentials=false",
			"--service-account-private-key-file=" + p.saKey,
			"--root-ca-file=" + p.caCert,
			"--cluster-signing-cert-file=" + p.caCert,
			"--cluster-signing-key-file=" + p.caKey,
			"--profiling=false",
		}, kcmArgs...)}
	scheduler := &component{name: "kube-scheduler", path: self, log: logPath("kube-scheduler"), args: append([]string{
		"scheduler",
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--profiling=false",
	}, schedArgs...)}
	comps := []*component{etcd, apiserver, controllerManager, scheduler}
	if kwokBin != "" {
		if kwokConfig == "" {
			kwokConfig = filepath.Join(filepath.Dir(kwokBin), "kwok.yaml")
		}
		comps = append(comps, &component{name: "kwok", path: kwokBin, log: logPath("kwok"), args: append([]string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + kwokConfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + kwokNodeSelector,
			"--server-address=",
			"--node-port=0",
		}, kwokArgs...)})
	}

	st := &state{PID: os.Getpid(), Dir: dir, Kubeconfig: kubeconfig, Server: server, EtcdEndpoint: etcdURL,
		PIDs: map[string]int{}, Logs: map[string]string{}}
	var stMu sync.Mutex
	writeState := func() {
		stMu.Lock()
		defer stMu.Unlock()
		for _, c := range comps {
			st.PIDs[c.name] = c.pid()
			st.Logs[c.name] = c.log
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		tmp := filepath.Join(dir, "ktestenv.json.tmp")
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, filepath.Join(dir, "ktestenv.json"))
		}
	}

	started := []*component{}
	var rn *node
	stopAll := func() {
		if rn != nil {
			// Nothing new gets scheduled or created while the node goes down.
			scheduler.stop(20 * time.Second)
			controllerManager.stop(20 * time.Second)
			rn.stop()
		}
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop(20 * time.Second)
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(p.caPEM)
	adminPair, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		return err
	}
	httpc := &http.Client{Timeout: 2 * time.Second}
	httpsc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: caPool, Certificates: []tls.Certificate{adminPair}},
	}}
	waitAPIServer := func() error {
		return waitHTTP(ctx, httpsc, server+"/readyz", timeout, apiserver.done)
	}

	// Start-up, interruptible by SIGTERM/SIGINT.
	startErr := make(chan error, 1)
	go func() {
		startErr <- func() error {
			for _, c := range comps {
				if err := c.start(); err != nil {
					return err
				}
				started = append(started, c)
				writeState()
				switch c {
				case etcd:
					if err := waitHTTP(ctx, httpc, etcdURL+"/health", timeout, c.done); err != nil {
						return fmt.Errorf("etcd: %w (see %s)", err, c.log)
					}
				case apiserver:
					if err := waitAPIServer(); err != nil {
						return fmt.Errorf("kube-apiserver: %w (see %s)", err, c.log)
					}
				}
			}
			if nodeOpts == nil {
				return nil
			}
			t := time.Now()
			rn = newNode(dir, kubeconfig, *nodeOpts)
			if err := rn.prepare(p, 10250); err != nil {
				return fmt.Errorf("real node: %w", err)
			}
			err := rn.start(ctx, func(c *component) {
				stMu.Lock()
				comps = append(comps, c)
				stMu.Unlock()
				writeState()
			})
			if err != nil {
				return fmt.Errorf("real node: %w", err)
			}
			stMu.Lock()
			st.NodeReadySeconds = time.Since(t).Seconds()
			st.Node = nodeName
			st.Registry = rn.registryAddr
			stMu.Unlock()
			fmt.Fprintf(os.Stderr, "ktestenv: node %s Ready in %s (pods on %s, bridge %s, registry %s)\n", nodeName,
				time.Since(t).Round(time.Millisecond), rn.subnet, rn.bridge, rn.registryAddr)
			return nil
		}()
	}()
	select {
	case err := <-startErr:
		if err != nil {
			cancel()
			stopAll()
			return err
		}
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "ktestenv: %v during start-up, stopping\n", s)
		cancel()
		<-startErr
		stopAll()
		return nil
	}
	stMu.Lock()
	st.Ready = true
	stMu.Unlock()
	writeState()
	fmt.Fprintf(os.Stderr, "ktestenv: control plane ready at %s in %s (logs in %s)\n", server,
		time.Since(start).Round(time.Millisecond), filepath.Join(dir, "logs"))
	fmt.Println(kubeconfig)

	// Supervise: any unexpected exit stops everything.
	exited := make(chan *component, len(comps))
	watch := func(c *component) {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		go func() {
			<-done
			c.mu.Lock()
			expected := c.expected || c.done != done
			c.mu.Unlock()
			if !expected {
				exited <- c
			}
		}()
	}
	for _, c := range comps {
		watch(c)
	}
	for {
		select {
		case c := <-exited:
			fmt.Fprintf(os.Stderr, "ktestenv: %s exited unexpectedly (see %s), stopping\n", c.name, c.log)
			stopAll()
			return errors.New(c.name + " exited")
		case s := <-sigs:
			if s != syscall.SIGUSR1 {
				fmt.Fprintf(os.Stderr, "ktestenv: %v, stopping\n", s)
				stopAll()
				return nil
			}
			fmt.Fprintln(os.Stderr, "ktestenv: SIGUSR1, restarting kube-apiserver")
			stMu.Lock()
			st.Ready = false
			stMu.Unlock()
			writeState()
			apiserver.stop(20 * time.Second)
			if err := apiserver.start(); err != nil {
				stopAll()
				return err
			}
			writeState()
			if err := waitAPIServer(); err != nil {
				stopAll()
				return fmt.Errorf("kube-apiserver restart: %w", err)
			}
			watch(apiserver)
			stMu.Lock()
			st.Ready = true
			st.APIServerRestarts++
			stMu.Unlock()
			writeState()
			fmt.Fprintf(os.Stderr, "ktestenv: kube-apiserver restarted (pid %d)\n", apiserver.pid())
		}
	}
}
