package rootfs

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Options is a parsed OCI mount option list.
type Options struct {
	Flags         uintptr // MS_* flags for mount(2)
	Clear         uintptr // MS_* flags explicitly cleared ("rw", "suid", ...)
	Bind          bool    // "bind" or "rbind"
	Recursive     bool    // "rbind"
	Propagation   uintptr // MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE (0: unchanged)
	RecursiveProp bool    // the "r" form of the propagation option
	RecAttr       uint64  // MOUNT_ATTR_* from "rro", "rnosuid", ...: set on the whole tree
	RecClear      uint64  // MOUNT_ATTR_* from "rrw", "rsuid", ...: cleared on the whole tree
	IDMap         bool    // "idmap" or "ridmap"
	Data          []string
	// TmpCopyUp copies the contents of the covered directory into a new tmpfs.
	TmpCopyUp bool
}

type optEffect struct {
	set, clear uintptr
}

// mountFlags maps the options that are MS_* flags of mount(2).
var mountFlags = map[string]optEffect{
	"async":         {clear: unix.MS_SYNCHRONOUS},
	"atime":         {clear: unix.MS_NOATIME},
	"defaults":      {},
	"dev":           {clear: unix.MS_NODEV},
	"diratime":      {clear: unix.MS_NODIRATIME},
	"dirsync":       {set: unix.MS_DIRSYNC},
	"exec":          {clear: unix.MS_NOEXEC},
	"iversion":      {set: unix.MS_I_VERSION},
	"lazytime":      {set: unix.MS_LAZYTIME},
	"loud":          {clear: unix.MS_SILENT},
	"mand":          {set: unix.MS_MANDLOCK},
	"noatime":       {set: unix.MS_NOATIME},
	"nodev":         {set: unix.MS_NODEV},
	"nodiratime":    {set: unix.MS_NODIRATIME},
	"noexec":        {set: unix.MS_NOEXEC},
	"noiversion":    {clear: unix.MS_I_VERSION},
	"nolazytime":    {clear: unix.MS_LAZYTIME},
	"nomand":        {clear: unix.MS_MANDLOCK},
	"norelatime":    {clear: unix.MS_RELATIME},
	"nostrictatime": {clear: unix.MS_STRICTATIME},
	"nosuid":        {set: unix.MS_NOSUID},
	"nosymfollow":   {set: unix.MS_NOSYMFOLLOW},
	"relatime":      {set: unix.MS_RELATIME},
	"remount":       {set: unix.MS_REMOUNT},
	"ro":            {set: unix.MS_RDONLY},
	"rw":            {clear: unix.MS_RDONLY},
	"silent":        {set: unix.MS_SILENT},
	"strictatime":   {set: unix.MS_STRICTATIME},
	"suid":          {clear: unix.MS_NOSUID},
	"sync":          {set: unix.MS_SYNCHRONOUS},
	"symfollow":     {clear: unix.MS_NOSYMFOLLOW},
}

var propagation = map[string]uintptr{
	"private":    unix.MS_PRIVATE,
	"shared":     unix.MS_SHARED,
	"slave":      unix.MS_SLAVE,
	"unbindable": unix.MS_UNBINDABLE,
}

// recursiveAttrs maps the recursive mount_setattr options ("rro", ...).
var recursiveAttrs = map[string]struct {
	set, clear uint64
}{
	"rro":          {set: unix.MOUNT_ATTR_RDONLY},
	"rrw":          {clear: unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {set: unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {clear: unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {set: unix.MOUNT_ATTR_NODEV},
	"rdev":         {clear: unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {set: unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {clear: unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {set: unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {clear: unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":    {set: unix.MOUNT_ATTR_RELATIME, clear: unix.MOUNT_ATTR__ATIME},
	"rnoatime":     {set: unix.MOUNT_ATTR_NOATIME, clear: unix.MOUNT_ATTR__ATIME},
	"rstrictatime": {set: unix.MOUNT_ATTR_STRICTATIME, clear: unix.MOUNT_ATTR__ATIME},
	"rnosymfollow": {set: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {clear: unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// ParseOptions splits an OCI option list into mount(2) flags, propagation,
// recursive attributes and filesystem data ("mode=755", "size=64m", ...).
func ParseOptions(opts []string) (Options, error) {
	var o Options
	for _, opt := range opts {
		switch {
		case opt == "bind":
			o.Bind = true
		case opt == "rbind":
			o.Bind, o.Recursive = true, true
		case opt == "idmap":
			o.IDMap = true
		case opt == "ridmap":
			o.IDMap, o.Recursive = true, true
		case opt == "tmpcopyup":
			o.TmpCopyUp = true
		case opt == "":
			return o, fmt.Errorf("empty mount option")
		default:
			if e, ok := mountFlags[opt]; ok {
				o.Flags = o.Flags&^e.clear | e.set
				o.Clear = o.Clear&^e.set | e.clear
				continue
			}
			if p, ok := propagation[opt]; ok {
				o.Propagation, o.RecursiveProp = p, false
				continue
			}
			if p, ok := propagation[strings.TrimPrefix(opt, "r")]; ok && opt[0] == 'r' {
				o.Propagation, o.RecursiveProp = p, true
				continue
			}
			if a, ok := recursiveAttrs[opt]; ok {
				o.RecAttr = o.RecAttr&^a.clear | a.set
				o.RecClear = o.RecClear&^a.set | a.clear
				continue
			}
			if strings.ContainsAny(opt, "\x00") {
				return o, fmt.Errorf("mount option %q contains a NUL byte", opt)
			}
			o.Data = append(o.Data, opt)
		}
	}
	return o, nil
}

// Attrs converts the per-mount flags to mount_setattr attributes, for bind
// mounts (which cannot take flags at mount time). Atime flags are only set
// when asked for, since a locked atime setting cannot be changed.
func (o Options) Attrs() (set, clear uint64) {
	pairs := []struct {
		flag uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	}
	for _, p := range pairs {
		if o.Flags&p.flag != 0 {
			set |= p.attr
		}
		if o.Clear&p.flag != 0 {
			clear |= p.attr
		}
	}
	switch {
	case o.Flags&unix.MS_NOATIME != 0:
		set, clear = set|unix.MOUNT_ATTR_NOATIME, clear|unix.MOUNT_ATTR__ATIME
	case o.Flags&unix.MS_STRICTATIME != 0:
		set, clear = set|unix.MOUNT_ATTR_STRICTATIME, clear|unix.MOUNT_ATTR__ATIME
	case o.Flags&unix.MS_RELATIME != 0:
		set, clear = set|unix.MOUNT_ATTR_RELATIME, clear|unix.MOUNT_ATTR__ATIME
	}
	return set, clear
}

// OptionNames lists the mount options nsbox understands (for features).
func OptionNames() []string {
	names := []string{"bind", "rbind", "idmap", "ridmap"}
	for n := range mountFlags {
		names = append(names, n)
	}
	for n := range propagation {
		names = append(names, n, "r"+n)
	}
	for n := range recursiveAttrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
