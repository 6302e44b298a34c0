package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// goRunBuildTime returns, when this process was started by "go run" (its
// parent is the go command with the argument "run"), how long ago the go
// command started: the time it took to build sgt, which counts towards the
// demo's promise. It returns 0 otherwise, or when /proc cannot tell.
func goRunBuildTime() time.Duration {
	ppid := os.Getppid()
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/cmdline")
	if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00")[1:], "run") {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces, inside
	// parentheses): field 22 of the line, the start time in clock ticks
	// after boot, is the 20th after the ")".
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat)[i+1:])
	if len(fields) < 20 {
		return 0
	}
	ticks, err := strconv.ParseFloat(fields[19], 64)
	if err != nil {
		return 0
	}
	uptime, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _, _ := strings.Cut(string(uptime), " ")
	secs, err := strconv.ParseFloat(up, 64)
	if err != nil {
		return 0
	}
	// Linux reports process times in USER_HZ, 100 ticks per second.
	ago := secs - ticks/100
	if ago <= 0 {
		return 0
	}
	return time.Duration(ago * float64(time.Second))
}
