package memory

import (
	"sync"
	"time"
)

// A table that no config holds any more (a reload went through a config
// without it, or renamed it) is kept for its keep duration, so that a
// config that names it again within that time finds its sessions: a reload
// A → B → A loses nothing. After that it is dropped.

const defaultKeep = 5 * time.Minute

var (
	keptMu sync.Mutex
	kept   = map[string]*keptTable{}
)

type keptTable struct {
	table *sessionTable
	timer *time.Timer
}

// reviveTable returns the table kept under name, if any, and stops keeping
// it (a config holds it again); otherwise a new table.
func reviveTable(name string) *sessionTable {
	keptMu.Lock()
	defer keptMu.Unlock()
	if k, ok := kept[name]; ok {
		k.timer.Stop()
		delete(kept, name)
		return k.table
	}
	t := newSessionTable()
	t.name = name
	return t
}

// keepTable keeps t under its name for d, then drops it (unless a config
// has taken it again). d of 0 drops it at once.
func keepTable(t *sessionTable, d time.Duration) {
	if d <= 0 {
		return
	}
	keptMu.Lock()
	defer keptMu.Unlock()
	k := &keptTable{table: t}
	k.timer = time.AfterFunc(d, func() {
		keptMu.Lock()
		defer keptMu.Unlock()
		if kept[t.name] == k {
			delete(kept, t.name)
		}
	})
	kept[t.name] = k
}
