package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/vfs"
)

// Config configures a broker. Zero fields take defaults.
type Config struct {
	DataDir string
	NodeID  int32
	// AutoCreateTopics creates a topic with DefaultPartitions on the first
	// Metadata or Produce that names it. Default on (AutoCreateTopicsOff to disable).
	AutoCreateTopicsOff bool
	DefaultPartitions   int32 // default 1
	MaxPartitions       int32 // per topic; default 10000
	// TopicDefaults overrides DefaultTopicConfigs broker-wide.
	TopicDefaults map[string]string
	// RetentionCheckInterval is how often retention and compaction run; default 5 minutes.
	RetentionCheckInterval time.Duration
	// Groups configures the consumer-group coordinator.
	Groups CoordinatorConfig
	FS     vfs.FS
	Logger *slog.Logger
	Now    func() time.Time
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string // overrides only
	Internal   bool              // __consumer_offsets: clients may not produce to it
}

type topic struct {
	TopicInfo
	parts []*partition
}

// Broker owns the topics of one node.
type Broker struct {
	cfg      Config
	fs       vfs.FS
	log      *slog.Logger
	defaults map[string]string

	mu       sync.RWMutex // guards topics, deleting, creating and closed
	topics   map[string]*topic
	deleting map[string]bool          // names whose directories DeleteTopic is still removing
	creating map[string]chan struct{} // names whose partitions createTopic is opening; closed when it is done
	closed   bool
	creates  sync.WaitGroup // createTopic calls in progress; Add under mu while !closed

	pidMu   sync.Mutex
	pidNext int64 // next producer id to hand out
	pidEnd  int64 // end of the durably reserved block

	notifyMu sync.Mutex
	notifyCh chan struct{}

	coord *Coordinator

	stop chan struct{}
	// Close runs once (closeOnce), in the background: closeDone is closed
	// when it has ended, with its result in closeErr; closeCount counts
	// the partitions closed so far, of closeTotal (-1: not yet known).
	closeOnce  sync.Once
	closeDone  chan struct{}
	closeErr   error
	closeCount atomic.Int64
	closeTotal atomic.Int64
	wg         sync.WaitGroup
}

const pidBlock = 1000

// Open opens (or creates) the broker's data directory and every topic in it.
func Open(cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: empty data directory", ErrInvalidConfig)
	}
	if cfg.FS == nil {
		cfg.FS = vfs.OS
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultPartitions == 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.MaxPartitions == 0 {
		cfg.MaxPartitions = 10000
	}
	if cfg.DefaultPartitions < 1 || cfg.DefaultPartitions > cfg.MaxPartitions {
		return nil, fmt.Errorf("%w: default partitions %d not in [1, %d]", ErrInvalidPartitions, cfg.DefaultPartitions, cfg.MaxPartitions)
	}
	if cfg.RetentionCheckInterval == 0 {
		cfg.RetentionCheckInterval = 5 * time.Minute
	}
	b := &Broker{cfg: cfg, fs: cfg.FS, log: cfg.Logger, topics: map[string]*topic{}, deleting: map[string]bool{}, creating: map[string]chan struct{}{}, notifyCh: make(chan struct{}), stop: make(chan struct{}), closeDone: make(chan struct{})}
	b.defaults = mergeConfigs(DefaultTopicConfigs, cfg.TopicDefaults)
	if _, _, err := b.logOptionsFor(nil); err != nil {
		return nil, fmt.Errorf("broker: topic defaults: %w", err)
	}
	if err := b.fs.MkdirAll(b.topicsDir()); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.loadProducerIDs(); err != nil {
		return nil, err
	}
	names, err := b.fs.List(b.topicsDir())
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	for _, name := range names {
		if err := b.loadTopic(name); err != nil {
			b.Close()
			return nil, err
		}
	}
	if b.coord, err = newCoordinator(b, cfg.Groups); err != nil {
		b.Close()
		return nil, err
	}
	b.wg.Add(1)
	go b.housekeeping()
	return b, nil
}

// Coordinator is the consumer-group coordinator.
func (b *Broker) Coordinator() *Coordinator { return b.coord }

func (b *Broker) topicsDir() string           { return path.Join(b.cfg.DataDir, "topics") }
func (b *Broker) topicDir(name string) string { return path.Join(b.topicsDir(), name) }
func (b *Broker) partDir(name string, p int32) string {
	return path.Join(b.topicDir(name), strconv.Itoa(int(p)))
}

// NodeID is this broker's id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// AutoCreate reports whether unknown topics are created on first use.
func (b *Broker) AutoCreate() bool { return !b.cfg.AutoCreateTopicsOff }

func (b *Broker) loadTopic(name string) error {
	raw, err := vfs.ReadFile(b.fs, path.Join(b.topicDir(name), "topic.json"))
	if vfs.IsNotExist(err) {
		// A creation that crashed before topic.json became durable.
		b.log.Warn("removing incomplete topic directory", "dir", b.topicDir(name))
		return vfs.RemoveAll(b.fs, b.topicDir(name))
	}
	if err != nil {
		return fmt.Errorf("broker: topic %s: %w", name, err)
	}
	var ti TopicInfo
	if err := json.Unmarshal(raw, &ti); err != nil || ti.Name != name || ti.Partitions < 1 {
		return fmt.Errorf("broker: topic %s: bad topic.json: %v", name, err)
	}
	parts, err := b.openPartitions(name, 0, ti.Partitions, ti.Configs)
	if err != nil {
		return err
	}
	b.topics[name] = &topic{TopicInfo: ti, parts: parts}
	return nil
}

// partitionWorkers is how many partitions are opened or closed at once.
// Each costs a few fsyncs of its own files; run side by side they share the
// device's queue and the filesystem's journal commits instead of waiting in
// line (10,000 partitions took 10-18 s to create and 23 s to close one at a
// time on a disk with 1.6 ms fsyncs).
const partitionWorkers = 16

// forEachPartition calls fn(i) for i in [0, n) on up to partitionWorkers
// goroutines and returns the first error; after an error no new calls start.
func forEachPartition(n int, fn func(i int) error) error {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for range min(n, partitionWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n && !failed(); i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// openPartitions opens partitions [from, to) of a topic concurrently. On an
// error it closes those it opened and returns the error.
func (b *Broker) openPartitions(name string, from, to int32, configs map[string]string) ([]*partition, error) {
	parts := make([]*partition, to-from)
	err := forEachPartition(len(parts), func(i int) error {
		p, err := openPartition(b, name, from+int32(i), configs)
		parts[i] = p
		return err
	})
	if err != nil {
		for _, p := range parts {
			if p != nil {
				p.close()
			}
		}
		return nil, err
	}
	return parts, nil
}

// logOptionsFor validates a topic's overrides over the broker defaults and
// returns its log options and whether it uses LogAppendTime.
func (b *Broker) logOptionsFor(overrides map[string]string) (commitlog.Options, bool, error) {
	cfg := mergeConfigs(b.defaults, overrides)
	o, err := logOptions(cfg)
	o.FS, o.Logger, o.Now = b.fs, b.log, b.cfg.Now
	return o, cfg[CfgMessageTimestamp] == "LogAppendTime", err
}

// ValidTopicName checks a topic name against Kafka's rules.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q; use [a-zA-Z0-9._-]", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// CreateTopic creates a topic with the given partitions (0: the default) and
// config overrides. With validateOnly nothing is created.
func (b *Broker) CreateTopic(name string, partitions int32, configs map[string]string, validateOnly bool) (TopicInfo, error) {
	if name == OffsetsTopic {
		return TopicInfo{}, fmt.Errorf("%w: %s is internal", ErrInvalidTopic, name)
	}
	return b.createTopic(name, partitions, configs, validateOnly, false)
}

func (b *Broker) createTopic(name string, partitions int32, configs map[string]string, validateOnly, internal bool) (TopicInfo, error) {
	if err := ValidTopicName(name); err != nil {
		return TopicInfo{}, err
	}
	if partitions <= 0 {
		partitions = b.cfg.DefaultPartitions
	}
	if partitions > b.cfg.MaxPartitions {
		return TopicInfo{}, fmt.Errorf("%w: %d, limit %d", ErrInvalidPartitions, partitions, b.cfg.MaxPartitions)
	}
	if _, _, err := b.logOptionsFor(configs); err != nil {
		return TopicInfo{}, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return TopicInfo{}, ErrClosed
	}
	if _, ok := b.topics[name]; ok || b.creating[name] != nil {
		b.mu.Unlock()
		return TopicInfo{}, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	if b.deleting[name] {
		// Its old directories are still there: a new topic would open them.
		b.mu.Unlock()
		return TopicInfo{}, fmt.Errorf("%w: %s is being deleted", ErrTopicExists, name)
	}
	ti := TopicInfo{Name: name, Partitions: partitions, Configs: maps.Clone(configs), Internal: internal}
	if ti.Configs == nil {
		ti.Configs = map[string]string{}
	}
	if _, err := rand.Read(ti.ID[:]); err != nil {
		b.mu.Unlock()
		return TopicInfo{}, err
	}
	if validateOnly {
		b.mu.Unlock()
		return ti, nil
	}
	// The partitions are opened without the broker's lock, which every
	// produce, fetch and metadata request takes to find its topic: a
	// thousand partitions take seconds of fsyncs to create. The name stays
	// reserved meanwhile, and Close waits for the creation to finish.
	created := make(chan struct{})
	b.creating[name] = created
	b.creates.Add(1)
	b.mu.Unlock()
	defer b.creates.Done()
	parts, err := b.openPartitions(name, 0, partitions, configs)
	if err == nil {
		if err = b.writeTopicInfo(ti); err != nil {
			for _, p := range parts {
				p.close()
			}
		}
	}
	if err != nil {
		vfs.RemoveAll(b.fs, b.topicDir(name))
		b.mu.Lock()
		delete(b.creating, name)
		b.mu.Unlock()
		close(created)
		return TopicInfo{}, fmt.Errorf("broker: create topic %s: %w", name, err)
	}
	b.mu.Lock()
	delete(b.creating, name)
	b.topics[name] = &topic{TopicInfo: ti, parts: parts}
	b.mu.Unlock()
	close(created)
	b.log.Info("created topic", "topic", name, "partitions", partitions, "configs", configs)
	return ti, nil
}

func (b *Broker) writeTopicInfo(ti TopicInfo) error {
	raw, err := json.MarshalIndent(ti, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(b.fs, b.topicDir(ti.Name), "topic.json", raw)
}

// DeleteTopic deletes a topic and its data.
func (b *Broker) DeleteTopic(name string) error {
	if name == OffsetsTopic {
		return fmt.Errorf("%w: %s is internal", ErrInvalidTopic, name)
	}
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	delete(b.topics, name)
	b.deleting[name] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.deleting, name)
		b.mu.Unlock()
	}()
	// topic.json goes first: a crash after it leaves a directory that Open removes.
	if err := b.fs.Remove(path.Join(b.topicDir(name), "topic.json")); err != nil {
		return fmt.Errorf("broker: delete topic %s: %w", name, err)
	}
	if err := b.fs.SyncDir(b.topicDir(name)); err != nil {
		return fmt.Errorf("broker: delete topic %s: %w", name, err)
	}
	for _, p := range t.parts {
		p.closeForDelete()
	}
	b.log.Info("deleted topic", "topic", name)
	return vfs.RemoveAll(b.fs, b.topicDir(name))
}

// CreatePartitions grows a topic to total partitions.
func (b *Broker) CreatePartitions(name string, total int32, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if total <= t.Partitions || total > b.cfg.MaxPartitions {
		return fmt.Errorf("%w: topic %s has %d; asked for %d (limit %d)", ErrInvalidPartitions, name, t.Partitions, total, b.cfg.MaxPartitions)
	}
	if validateOnly {
		return nil
	}
	var added []*partition
	for p := t.Partitions; p < total; p++ {
		part, err := openPartition(b, name, p, t.Configs)
		if err != nil {
			for _, q := range added {
				q.closeForDelete()
			}
			return err
		}
		added = append(added, part)
	}
	ti := t.TopicInfo
	ti.Partitions = total
	if err := b.writeTopicInfo(ti); err != nil {
		for _, q := range added {
			q.closeForDelete()
		}
		return err
	}
	nt := &topic{TopicInfo: ti, parts: append(slices.Clip(t.parts), added...)}
	b.topics[name] = nt
	return nil
}

// Topics lists the topics, sorted by name.
func (b *Broker) Topics() []TopicInfo {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]TopicInfo, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t.TopicInfo)
	}
	slices.SortFunc(out, func(x, y TopicInfo) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return out
}

// Topic returns one topic; with autoCreate and the broker's auto-creation on,
// a missing topic is created with the default partitions.
func (b *Broker) Topic(name string, autoCreate bool) (TopicInfo, error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	b.mu.RUnlock()
	if ok {
		return t.TopicInfo, nil
	}
	if !autoCreate || b.cfg.AutoCreateTopicsOff {
		return TopicInfo{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	ti, err := b.CreateTopic(name, 0, nil, false)
	if err != nil && !errors.Is(err, ErrTopicExists) {
		return TopicInfo{}, err
	}
	b.mu.RLock()
	created := b.creating[name]
	b.mu.RUnlock()
	if created != nil {
		<-created // another request is creating it
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if t, ok := b.topics[name]; ok {
		return t.TopicInfo, nil
	}
	return ti, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
}

// TopicConfigs returns the effective configs of a topic and which keys are
// overridden on the topic (the rest are broker defaults).
func (b *Broker) TopicConfigs(name string) (effective map[string]string, overridden map[string]bool, err error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	b.mu.RUnlock()
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	overridden = map[string]bool{}
	for k := range t.Configs {
		overridden[k] = true
	}
	return mergeConfigs(b.defaults, t.Configs), overridden, nil
}

// AlterTopicConfigs changes a topic's overrides: set adds or replaces keys,
// remove drops keys back to the default. With replace, the overrides become
// exactly set (AlterConfigs semantics); otherwise they are edited in place
// (IncrementalAlterConfigs). Changes apply to the partitions at once and
// persist.
func (b *Broker) AlterTopicConfigs(name string, set map[string]string, remove []string, replace, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	next := maps.Clone(t.Configs)
	if replace {
		next = map[string]string{}
	}
	maps.Copy(next, set)
	for _, k := range remove {
		if _, known := DefaultTopicConfigs[k]; !known {
			return fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, k)
		}
		delete(next, k)
	}
	if _, _, err := b.logOptionsFor(next); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	ti := t.TopicInfo
	ti.Configs = next
	if err := b.writeTopicInfo(ti); err != nil {
		return err
	}
	for _, p := range t.parts {
		if err := p.reconfigure(next); err != nil {
			return err
		}
	}
	t.TopicInfo = ti
	return nil
}

func (b *Broker) partition(name string, p int32) (*partition, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	t, ok := b.topics[name]
	if !ok || p < 0 || p >= int32(len(t.parts)) {
		return nil, fmt.Errorf("%w: %s/%d", ErrUnknownTopic, name, p)
	}
	return t.parts[p], nil
}

// Appended returns a channel closed the next time any partition's high
// watermark advances; long-polling fetches wait on it.
func (b *Broker) Appended() <-chan struct{} {
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	return b.notifyCh
}

func (b *Broker) notifyAppended() {
	b.notifyMu.Lock()
	close(b.notifyCh)
	b.notifyCh = make(chan struct{})
	b.notifyMu.Unlock()
}

// InitProducerID hands out a new producer id with epoch 0. Ids are unique
// across restarts: blocks of ids are reserved durably before use.
func (b *Broker) InitProducerID() (int64, int16, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext >= b.pidEnd {
		if err := b.reserveProducerIDs(b.pidEnd + pidBlock); err != nil {
			return -1, -1, err
		}
	}
	id := b.pidNext
	b.pidNext++
	return id, 0, nil
}

func (b *Broker) loadProducerIDs() error {
	raw, err := vfs.ReadFile(b.fs, path.Join(b.cfg.DataDir, "producer-ids"))
	switch {
	case vfs.IsNotExist(err):
		b.pidNext, b.pidEnd = 0, 0
		return nil
	case err != nil:
		return fmt.Errorf("broker: producer ids: %w", err)
	case len(raw) != 8:
		return fmt.Errorf("broker: producer-ids file has %d bytes, want 8", len(raw))
	}
	end := int64(binary.BigEndian.Uint64(raw))
	b.pidNext, b.pidEnd = end, end // ids below end may have been handed out
	return nil
}

func (b *Broker) reserveProducerIDs(end int64) error {
	if err := vfs.WriteFileAtomic(b.fs, b.cfg.DataDir, "producer-ids", binary.BigEndian.AppendUint64(nil, uint64(end))); err != nil {
		return fmt.Errorf("broker: reserve producer ids: %w", err)
	}
	b.pidEnd = end
	return nil
}

// housekeeping runs retention and compaction periodically.
func (b *Broker) housekeeping() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.RunRetention()
		}
	}
}

// RunRetention runs retention and compaction on every partition now.
func (b *Broker) RunRetention() {
	b.mu.RLock()
	var parts []*partition
	for _, t := range b.topics {
		parts = append(parts, t.parts...)
	}
	b.mu.RUnlock()
	for _, p := range parts {
		p.housekeep()
	}
}

// Close stops housekeeping and closes every partition cleanly.
func (b *Broker) Close() error { return b.CloseWithin(context.Background()) }

// CloseWithin is Close bounded by ctx. When ctx ends first it returns an
// ErrCloseDeadline error saying how many partitions were closed: no more
// are started, the work under way finishes in the background (closeDone is
// closed when it has), and the rest keep their files as they are, which
// the next Open recovers as it does after a crash (every record appended
// was written; what a clean close adds is the indexes and the producer
// state, which recovery rebuilds). The caller should then exit rather
// than open the data directory again. Later and concurrent calls wait for
// the same close (or their own ctx) and return its result, which is an
// ErrCloseDeadline error too if a partition was left unclosed.
func (b *Broker) CloseWithin(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.closeTotal.Store(-1)
		go b.closeAll(ctx)
	})
	select {
	case <-b.closeDone:
		return b.closeErr
	case <-ctx.Done():
	}
	select {
	case <-b.closeDone: // finished as ctx ended
		return b.closeErr
	default:
	}
	n, total := b.closeCount.Load(), b.closeTotal.Load()
	b.log.Warn("partitions not closed in time; the next start recovers them", "closed", n, "partitions", total)
	return b.deadlineError(ctx, n, total)
}

func (b *Broker) deadlineError(ctx context.Context, n, total int64) error {
	if total < 0 {
		return fmt.Errorf("%w (%v) before the partitions were closed; the next start recovers them", ErrCloseDeadline, context.Cause(ctx))
	}
	return fmt.Errorf("%w: %d of %d partitions closed (%v); the next start recovers the others", ErrCloseDeadline, n, total, context.Cause(ctx))
}

// closeAll is Close's work: the coordinator, housekeeping, creations in
// progress, then every partition unless ctx ends first. It sets closeErr
// and closes closeDone.
func (b *Broker) closeAll(ctx context.Context) {
	defer close(b.closeDone)
	if b.coord != nil {
		b.coord.close() // before the partitions: it writes to __consumer_offsets
	}
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	b.creates.Wait() // a creation in progress finishes and adds its topic
	b.mu.RLock()
	var parts []*partition
	for _, t := range b.topics {
		parts = append(parts, t.parts...)
	}
	b.mu.RUnlock()
	b.closeTotal.Store(int64(len(parts)))
	// Every partition is closed, whatever the others report, unless ctx
	// ends first.
	var (
		mu     sync.Mutex
		failed []error
	)
	forEachPartition(len(parts), func(i int) error {
		if ctx.Err() != nil {
			return nil
		}
		if err := parts[i].close(); err != nil {
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
			return nil
		}
		b.closeCount.Add(1)
		return nil
	})
	if closed := b.closeCount.Load(); closed+int64(len(failed)) < int64(len(parts)) { // some skipped
		failed = append([]error{b.deadlineError(ctx, closed, int64(len(parts)))}, failed...)
	}
	b.closeErr = errors.Join(failed...)
}
