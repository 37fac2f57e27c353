package nsbox_test

import (
	"fmt"
	"log"
	"os"

	"github.com/nsbox/nsbox"
)

// Start a box that reports its hostname and pid, and wait for it.
func Example() {
	state, err := os.MkdirTemp("", "nsbox-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(state)
	rt, err := nsbox.New(state)
	if err != nil {
		log.Fatal(err)
	}
	spec, err := nsbox.NewSpec([]string{"/bin/sh", "-c", `echo "$(hostname) runs as pid $$"`},
		nsbox.WithHostname("example"), nsbox.WithWorkdir("/"))
	if err != nil {
		log.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	box, err := rt.Run("example", spec, nsbox.Options{Init: true, AutoIDs: true, Ephemeral: true, Stdout: w})
	w.Close()
	if err != nil {
		log.Fatal(err)
	}
	out := make([]byte, 100)
	n, _ := r.Read(out)
	code, err := box.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%sexit status %d\n", out[:n], code)
	// Output:
	// example runs as pid 2
	// exit status 0
}
