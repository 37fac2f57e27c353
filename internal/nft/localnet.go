package nft

import (
	"fmt"

	"github.com/nsbox/nsbox/internal/rtnl"
)

// setRouteLocalnet sets net.ipv4.conf.DEV.route_localnet=1 in the network
// namespace netns (0: the caller's), through rtnetlink.
func setRouteLocalnet(netns int, dev string) error {
	var c *rtnl.Conn
	var err error
	if netns != 0 {
		c, err = rtnl.DialAt(netns)
	} else {
		c, err = rtnl.Dial()
	}
	if err != nil {
		return fmt.Errorf("route_localnet on %s: open rtnetlink socket: %w", dev, err)
	}
	defer c.Close()
	l, err := c.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("route_localnet on %s: %w", dev, err)
	}
	if err := c.SetRouteLocalnet(l.Index); err != nil {
		return fmt.Errorf("route_localnet on %s: %w", dev, err)
	}
	return nil
}
