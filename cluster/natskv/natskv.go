// Package natskv keeps a cluster's member records in a NATS JetStream KV
// bucket: the store of cluster.ProviderKV. It is apart from package cluster
// so that only the processes that use it link the NATS client (package
// gateway imports cluster and must not).
package natskv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/cluster"
)

// DefaultBucket is the members' bucket. internal/natsauth grants access to
// it by name (its stream is "KV_" + the bucket).
const DefaultBucket = "mastertrust_members"

// Options configure Open.
type Options struct {
	// Bucket is the bucket's name. Default: DefaultBucket.
	Bucket string
	// TTL is how long a record lasts without being put again: the
	// provider's cluster.KVConfig.TTL. It is the bucket's, fixed by the
	// process that creates the bucket; Open warns when an existing bucket
	// has another. Required.
	TTL time.Duration
	// Replicas of the bucket's stream (3 in production). Default: 1.
	Replicas int
	// Logger receives Open's warnings. Default: slog.Default().
	Logger *slog.Logger
}

// Store is a cluster.MemberStore over a JetStream KV bucket.
type Store struct {
	kv jetstream.KeyValue
}

var _ cluster.MemberStore = (*Store)(nil)

// Open returns the store over the bucket, creating it if it is missing,
// with its TTL, one value per key and, when the server supports them (NATS
// 2.11 and later), markers for expired records, so that watchers see a
// record expire instead of finding out by pruning (the provider does both).
// An existing bucket is used as it is: the members share it, and none
// should change what the others rely on.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Store, error) {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TTL <= 0 {
		return nil, fmt.Errorf("natskv: open bucket %s: TTL %v must be positive", o.Bucket, o.TTL)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natskv: open bucket %s: %w", o.Bucket, err)
	}
	kv, err := js.KeyValue(ctx, o.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = create(ctx, js, o)
	}
	if err != nil {
		return nil, fmt.Errorf("natskv: open bucket %s: %w", o.Bucket, err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("natskv: bucket %s status: %w", o.Bucket, err)
	}
	if status.TTL() != o.TTL {
		o.Logger.Warn("the members' bucket has another TTL than this process's: records expire after the bucket's",
			slog.String("bucket", o.Bucket), slog.Duration("bucket_ttl", status.TTL()), slog.Duration("ttl", o.TTL))
	}
	return &Store{kv: kv}, nil
}

// create creates the bucket, without expiry markers on a server too old
// for them. A bucket that another process created meanwhile is used.
func create(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "cluster members' records, put every heartbeat (cluster.ProviderKV)",
		History:     1,
		TTL:         o.TTL,
		Replicas:    o.Replicas,
		// How long the marker of an expired record stays: a watcher that
		// starts within it sees the record as deleted. The server refuses
		// less than a second.
		LimitMarkerTTL: max(o.TTL, time.Second),
	}
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		o.Logger.Info("the NATS server places no markers for expired records: watchers prune them on their own clock",
			slog.String("bucket", o.Bucket))
		cfg.LimitMarkerTTL = 0
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, o.Bucket)
	}
	return kv, err
}

// Put stores value under key.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if _, err := s.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("natskv: put %s: %w", key, err)
	}
	return nil
}

// Delete removes key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("natskv: delete %s: %w", key, err)
	}
	return nil
}

// Watch delivers every record, a Synced event, then every change, until
// ctx ends (kv.WatchAll over an ordered consumer, which survives
// reconnections by itself).
func (s *Store) Watch(ctx context.Context) (<-chan cluster.MemberStoreEvent, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("natskv: watch: %w", err)
	}
	out := make(chan cluster.MemberStoreEvent)
	go func() {
		defer close(out)
		// Stop the watch when ctx ends; nats.go then closes Updates.
		stop := context.AfterFunc(ctx, func() { _ = w.Stop() })
		defer stop()
		for e := range w.Updates() {
			ev := cluster.MemberStoreEvent{Synced: true}
			if e != nil {
				ev = cluster.MemberStoreEvent{Key: e.Key()}
				if e.Operation() == jetstream.KeyValuePut {
					ev.Value = e.Value()
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				// Keep draining: nats.go's callback blocks on a full
				// Updates channel until it is closed.
			}
		}
	}()
	return out, nil
}
