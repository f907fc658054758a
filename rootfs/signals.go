package rootfs

import (
	"os"
	"os/signal"
)

// NotifyForwarded subscribes to ForwardedSignals and returns the channel to
// pass as Spec.Signals, and the function that ends the subscription. The Go
// runtime enables signals one at a time through a round trip to its signal
// thread (about 50µs each, 0.6ms for the set): the subscription is made in
// the background so that a foreground run does not wait for it. A signal
// arriving in the first moments, before it is complete, gets its default
// action (SIGTERM and SIGINT end the caller, and the sandbox with it).
func NotifyForwarded() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 16)
	done := make(chan struct{})
	go func() {
		signal.Notify(ch, ForwardedSignals...)
		close(done)
	}()
	return ch, func() {
		<-done
		signal.Stop(ch)
	}
}
