package main

import (
	"fmt"
	"runtime"

	"go.etcd.io/etcd/api/v3/version"
	kversion "k8s.io/component-base/version"
)

func printVersion() {
	v := kversion.Get()
	fmt.Printf("kubernetes %s (%s)\netcd %s\ngo %s %s/%s\n",
		v.GitVersion, v.GitCommit, version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
