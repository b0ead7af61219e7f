package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DeployBucket is the JetStream key-value bucket of deployed pipeline
// specs: key = pipeline name, value = the spec's YAML as applied; each
// change is a new revision, and the bucket keeps the last 16 of each.
const DeployBucket = "weir_pipelines"

// ErrNotDeployed is returned by Delete for a pipeline that is not
// deployed.
var ErrNotDeployed = errors.New("control: pipeline not deployed")

// Deployment is one deployed pipeline spec.
type Deployment struct {
	Name string
	// Revision is the bucket's sequence number of this version: it grows
	// with every change of any pipeline.
	Revision uint64
	Spec     []byte
	Applied  time.Time
}

// DeployKV opens the deployment bucket, creating it if need be: the
// one place its configuration is written.
func (p *Plane) DeployKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      DeployBucket,
		Description: "weir pipeline specs: key = pipeline name, value = the YAML as applied",
		History:     16,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("control: bucket %s: %w", DeployBucket, err)
	}
	return kv, nil
}

// Apply stores spec as the pipeline's current version and returns its
// revision; a spec equal to the current one is not stored again (changed
// false). The caller validates the spec first.
func (p *Plane) Apply(ctx context.Context, name string, spec []byte) (rev uint64, changed bool, err error) {
	kv, err := p.DeployKV(ctx)
	if err != nil {
		return 0, false, err
	}
	cur, err := kv.Get(ctx, name)
	switch {
	case err == nil && bytes.Equal(cur.Value(), spec):
		return cur.Revision(), false, nil
	case err == nil:
		// Update only the version read: two applies racing do not lose
		// one silently.
		rev, err = kv.Update(ctx, name, spec, cur.Revision())
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = kv.Create(ctx, name, spec)
	}
	if err != nil {
		return 0, false, fmt.Errorf("control: applying %s: %w", name, err)
	}
	return rev, true, nil
}

// Delete removes a deployed pipeline.
func (p *Plane) Delete(ctx context.Context, name string) error {
	kv, err := p.DeployKV(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Get(ctx, name); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %s", ErrNotDeployed, name)
	} else if err != nil {
		return fmt.Errorf("control: %s: %w", name, err)
	}
	if err := kv.Delete(ctx, name); err != nil {
		return fmt.Errorf("control: deleting %s: %w", name, err)
	}
	return nil
}

// Deployments lists the deployed pipelines by name.
func (p *Plane) Deployments(ctx context.Context) ([]Deployment, error) {
	kv, err := p.DeployKV(ctx)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("control: listing %s: %w", DeployBucket, err)
	}
	var out []Deployment
	for name := range lister.Keys() {
		e, err := kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("control: %s: %w", name, err)
		}
		out = append(out, Deployment{Name: name, Revision: e.Revision(), Spec: e.Value(), Applied: e.Created()})
	}
	slices.SortFunc(out, func(a, b Deployment) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
