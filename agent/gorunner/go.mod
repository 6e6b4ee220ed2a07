module dice/agent/gorunner

go 1.26
