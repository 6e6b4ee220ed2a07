package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// runImage writes an OCI image layout archive (what `ctr images import` reads) with one
// layer, made from local files only: no registry is involved.
//
//	ktestenv image --name docker.io/library/busybox:stable --busybox /bin/busybox --out busybox.tar
//	ktestenv image --name ktestenv.local/pause:1 --add bin/pause=/pause --entrypoint /pause --out pause.tar
//	ktestenv image --name docker.io/library/python:3.11-slim --rootfs-tar rootfs.tar --cmd python3 --out python.tar
//
// The layer's timestamps are fixed, so the same inputs give the same image digest.
func runImage(args []string) int {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	name := fs.String("name", "", "full image name, e.g. docker.io/library/busybox:stable (required)")
	out := fs.String("out", "", "output archive (required)")
	rootfsTar := fs.String("rootfs-tar", "", "use this tar (e.g. from mmdebstrap) as the layer")
	busybox := fs.String("busybox", "", "make a busybox root filesystem from this static busybox binary")
	var adds, env multiFlag
	fs.Var(&adds, "add", "SRC=DEST: add the file (or directory tree) SRC at DEST (repeatable)")
	base := fs.String("base", "", "an image archive written by `ktestenv image`: its layers and settings come first")
	workdir := fs.String("workdir", "", "working directory (default: the base's, else /)")
	fs.Var(&env, "env", "K=V image environment (repeatable)")
	entrypoint := fs.String("entrypoint", "", "entrypoint, words separated by spaces")
	cmd := fs.String("cmd", "", "command, words separated by spaces")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "image: --name and --out are required")
		return 2
	}
	if *rootfsTar != "" && (*busybox != "" || len(adds) > 0 || *base != "") {
		fmt.Fprintln(os.Stderr, "image: --rootfs-tar is the whole layer: no --busybox, --add or --base with it")
		return 2
	}
	if *rootfsTar == "" && *busybox == "" && len(adds) == 0 {
		fmt.Fprintln(os.Stderr, "image: give --rootfs-tar, --busybox or files with --add")
		return 2
	}
	if err := buildImage(*name, *out, *base, *rootfsTar, *busybox, *workdir, adds, env, strings.Fields(*entrypoint), strings.Fields(*cmd)); err != nil {
		fmt.Fprintf(os.Stderr, "image %s: %v\n", *name, err)
		return 1
	}
	return 0
}

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type tarWriter struct {
	tw   *tar.Writer
	seen map[string]bool
}

func (t *tarWriter) dir(name string, mode int64) error {
	name = strings.TrimPrefix(name, "/")
	if t.seen[name] {
		return nil
	}
	t.seen[name] = true
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch})
}

func (t *tarWriter) file(name string, mode int64, data []byte) error {
	name = strings.TrimPrefix(name, "/")
	if err := t.parents(name); err != nil {
		return err
	}
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := t.tw.Write(data)
	return err
}

func (t *tarWriter) symlink(name, target string) error {
	name = strings.TrimPrefix(name, "/")
	if err := t.parents(name); err != nil {
		return err
	}
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch})
}

func (t *tarWriter) parents(name string) error {
	parts := strings.Split(filepath.Dir(name), "/")
	for i := range parts {
		if parts[i] == "." {
			continue
		}
		if err := t.dir(strings.Join(parts[:i+1], "/"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// layerFromFiles builds a small root filesystem: a busybox with its applet links and/or files.
func layerFromFiles(busybox string, adds []string, onBase bool) ([]byte, error) {
	var buf bytes.Buffer
	t := &tarWriter{tw: tar.NewWriter(&buf), seen: map[string]bool{}}
	if onBase {
		// The base has the root filesystem: this layer must not replace its directories.
		for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "var", "usr", "usr/bin", "usr/sbin", "sbin", "tmp"} {
			t.seen[d] = true
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "var", "usr", "usr/bin", "usr/sbin", "sbin"} {
		if err := t.dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.dir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if !onBase {
		if err := t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
			return nil, err
		}
		if err := t.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
			return nil, err
		}
	}
	if busybox != "" {
		data, err := os.ReadFile(busybox)
		if err != nil {
			return nil, err
		}
		if err := t.file("bin/busybox", 0o755, data); err != nil {
			return nil, err
		}
		// `busybox --list-full` names every applet with its directory (bin/sh, usr/bin/wget...).
		list, err := exec.Command(busybox, "--list-full").Output()
		if err != nil {
			return nil, fmt.Errorf("%s --list-full: %w", busybox, err)
		}
		applets := strings.Fields(string(list))
		sort.Strings(applets)
		for _, a := range applets {
			if a == "bin/busybox" {
				continue
			}
			if err := t.symlink(a, "/bin/busybox"); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range adds {
		src, dest, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(dest, "/") {
			return nil, fmt.Errorf("--add %q: want SRC=/DEST", a)
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			data, err := os.ReadFile(src)
			if err != nil {
				return nil, err
			}
			if err := t.file(dest, 0o755, data); err != nil {
				return nil, err
			}
			continue
		}
		// A directory tree: regular files and directories (sorted, so the digest is stable).
		err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			target := filepath.Join(dest, rel)
			if d.IsDir() {
				if err := t.parents(strings.TrimPrefix(target, "/") + "/x"); err != nil {
					return err
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return t.file(target, int64(info.Mode().Perm()), data)
		})
		if err != nil {
			return nil, err
		}
	}
	if err := t.tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// baseImage is what --base contributes: its layer blobs (read from the archive) and config.
type baseImage struct {
	archive string
	layers  []descriptor
	diffIDs []string
	config  map[string]any
}

func readBase(archive string) (*baseImage, error) {
	blobs := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Size < 1<<20 && h.Typeflag == tar.TypeReg { // index, manifests, configs
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			blobs[h.Name] = b
		}
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("%s: not a one-image OCI archive", archive)
	}
	blob := func(d string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	var m struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &m); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", archive, err)
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(blob(m.Config.Digest), &cfg); err != nil {
		return nil, fmt.Errorf("%s: config: %w", archive, err)
	}
	b := &baseImage{archive: archive, layers: m.Layers, config: cfg}
	if rootfs, ok := cfg["rootfs"].(map[string]any); ok {
		for _, d := range rootfs["diff_ids"].([]any) {
			b.diffIDs = append(b.diffIDs, d.(string))
		}
	}
	return b, nil
}

func buildImage(name, out, basePath, rootfsTar, busybox, workdir string, adds, env, entrypoint, cmd []string) error {
	var base *baseImage
	if basePath != "" {
		var err error
		if base, err = readBase(basePath); err != nil {
			return err
		}
	}
	// The layer: read fully for small images, streamed (hashed first) for a rootfs tar.
	var layer []byte
	var layerDigest string
	var layerSize int64
	if rootfsTar != "" {
		f, err := os.Open(rootfsTar)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		layerDigest, layerSize = "sha256:"+hex.EncodeToString(h.Sum(nil)), n
	} else {
		var err error
		if layer, err = layerFromFiles(busybox, adds, base != nil); err != nil {
			return err
		}
		layerDigest, layerSize = digestOf(layer), int64(len(layer))
	}
	runConfig := map[string]any{}
	var diffIDs []string
	var layers []descriptor
	history := []any{}
	if base != nil {
		if rc, ok := base.config["config"].(map[string]any); ok {
			runConfig = rc
		}
		diffIDs, layers = base.diffIDs, base.layers
		if h, ok := base.config["history"].([]any); ok {
			history = h
		}
	}
	// --env adds to (or replaces by name in) the base's environment.
	baseEnv, _ := runConfig["Env"].([]any)
	merged := []string{}
	for _, e := range baseEnv {
		k, _, _ := strings.Cut(e.(string), "=")
		overridden := false
		for _, n := range env {
			if strings.HasPrefix(n, k+"=") {
				overridden = true
			}
		}
		if !overridden {
			merged = append(merged, e.(string))
		}
	}
	merged = append(merged, env...)
	if len(merged) == 0 {
		merged = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	runConfig["Env"] = merged
	if len(entrypoint) > 0 || base == nil {
		runConfig["Entrypoint"] = entrypoint
	}
	if len(cmd) > 0 || base == nil {
		runConfig["Cmd"] = cmd
	}
	if workdir != "" {
		runConfig["WorkingDir"] = workdir
	} else if base == nil {
		runConfig["WorkingDir"] = "/"
	}
	imgConfig := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       runConfig,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": append(append([]string{}, diffIDs...), layerDigest)},
		"history": append(history, map[string]any{
			"created":    epoch.Format(time.RFC3339),
			"created_by": "ktestenv image (local build, no registry)",
		}),
	}
	configJSON, _ := json.Marshal(imgConfig)
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(configJSON), Size: int64(len(configJSON))},
		"layers":        append(append([]descriptor{}, layers...), descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerDigest, Size: layerSize}),
	}
	manifestJSON, _ := json.Marshal(manifest)
	tag := name[strings.LastIndex(name, ":")+1:]
	index := map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest:    digestOf(manifestJSON), Size: int64(len(manifestJSON)),
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
			Platform:    map[string]string{"architecture": "amd64", "os": "linux"},
		}},
	}
	indexJSON, _ := json.Marshal(index)

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	put := func(path string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if base != nil {
		// The base's layer blobs, copied from its archive.
		want := map[string]bool{}
		for _, l := range base.layers {
			want[blob(l.Digest)] = true
		}
		src, err := os.Open(base.archive)
		if err != nil {
			return err
		}
		tr := tar.NewReader(src)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				src.Close()
				return err
			}
			if want[h.Name] {
				delete(want, h.Name)
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: h.Name, Mode: 0o644, Size: h.Size, ModTime: epoch}); err != nil {
					src.Close()
					return err
				}
				if _, err := io.Copy(tw, tr); err != nil {
					src.Close()
					return err
				}
			}
		}
		src.Close()
		if len(want) > 0 {
			return fmt.Errorf("%s: layer blobs missing from the archive", base.archive)
		}
	}
	if layer != nil {
		if err := put(blob(layerDigest), layer); err != nil {
			return err
		}
	} else {
		src, err := os.Open(rootfsTar)
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blob(layerDigest), Mode: 0o644, Size: layerSize, ModTime: epoch})
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	for _, b := range [][]byte{configJSON, manifestJSON} {
		if err := put(blob(digestOf(b)), b); err != nil {
			return err
		}
	}
	if err := put("index.json", indexJSON); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: %s -> %s (layer %s, %d bytes)\n", name, out, layerDigest[:19], layerSize)
	return os.Rename(tmp, out)
}
