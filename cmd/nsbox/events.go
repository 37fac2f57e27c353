package main

import (
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
)

func cmdEvents(g *global, args []string) int {
	var stats bool
	interval := "5s"
	fs := newFlagSet("events", "[--stats] [--interval DURATION] ID",
		"Print a box's statistics every interval and its OOM kills as they happen, as JSON lines, until it stops (--stats: once).")
	fs.boolVar(&stats, "stats", "", "print the statistics once and exit")
	fs.stringVar(&interval, "interval", "", "DURATION", "time between statistics (default 5s)")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if stats {
		s, err := rt.Stats(pos[0])
		if err != nil {
			return fail(g, err)
		}
		writeJSON(os.Stdout, nsbox.Event{Type: "stats", ID: pos[0], Data: s})
		return 0
	}
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return fail(g, &usageError{"--interval " + interval + ": want a positive duration like 5s"})
	}
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	go func() { <-sigs; close(stop) }()
	if err := rt.Events(pos[0], d, stop, func(e nsbox.Event) { writeJSON(os.Stdout, e) }); err != nil {
		return fail(g, err)
	}
	return 0
}
