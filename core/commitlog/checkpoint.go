package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path"

	"github.com/weirstream/weir/core/vfs"
)

const (
	checkpointName    = "checkpoint"
	checkpointMagic   = "WLCP"
	checkpointVersion = 1
	checkpointSize    = 48
	flagClean         = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkpoint is the content of the checkpoint file (see the package doc).
type checkpoint struct {
	clean         bool
	recoveryPoint int64 // every offset below it is durable
	logEnd        int64 // with clean: the log end offset at shutdown
	activeBase    int64 // with clean: base and size of the active segment
	activeSize    int64
}

func (c checkpoint) encode() []byte {
	b := make([]byte, 0, checkpointSize)
	b = append(b, checkpointMagic...)
	b = binary.BigEndian.AppendUint32(b, checkpointVersion)
	var flags uint32
	if c.clean {
		flags |= flagClean
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(c.recoveryPoint))
	b = binary.BigEndian.AppendUint64(b, uint64(c.logEnd))
	b = binary.BigEndian.AppendUint64(b, uint64(c.activeBase))
	b = binary.BigEndian.AppendUint64(b, uint64(c.activeSize))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadCheckpoint = errors.New("commitlog: bad checkpoint file")

func decodeCheckpoint(b []byte) (checkpoint, error) {
	if len(b) != checkpointSize || string(b[:4]) != checkpointMagic {
		return checkpoint{}, fmt.Errorf("%w: %d bytes", errBadCheckpoint, len(b))
	}
	if crc32.Checksum(b[:44], castagnoli) != binary.BigEndian.Uint32(b[44:]) {
		return checkpoint{}, fmt.Errorf("%w: checksum mismatch", errBadCheckpoint)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != checkpointVersion {
		return checkpoint{}, fmt.Errorf("%w: version %d", errBadCheckpoint, v)
	}
	c := checkpoint{
		clean:         binary.BigEndian.Uint32(b[8:])&flagClean != 0,
		recoveryPoint: int64(binary.BigEndian.Uint64(b[12:])),
		logEnd:        int64(binary.BigEndian.Uint64(b[20:])),
		activeBase:    int64(binary.BigEndian.Uint64(b[28:])),
		activeSize:    int64(binary.BigEndian.Uint64(b[36:])),
	}
	if c.recoveryPoint < 0 || c.logEnd < 0 || c.activeBase < 0 || c.activeSize < 0 {
		return checkpoint{}, fmt.Errorf("%w: negative field", errBadCheckpoint)
	}
	return c, nil
}

// readCheckpoint returns the checkpoint, or ok=false when it is missing or
// damaged (then recovery starts from the first segment).
func readCheckpoint(fsys vfs.FS, dir string) (checkpoint, bool, error) {
	b, err := vfs.ReadFile(fsys, path.Join(dir, checkpointName))
	if err != nil {
		if vfs.IsNotExist(err) {
			return checkpoint{}, false, nil
		}
		return checkpoint{}, false, err
	}
	c, err := decodeCheckpoint(b)
	if err != nil {
		return checkpoint{}, false, nil
	}
	return c, true, nil
}

// writeCheckpoint replaces the checkpoint atomically and durably.
func writeCheckpoint(fsys vfs.FS, dir string, c checkpoint) error {
	tmp := path.Join(dir, checkpointName+tmpSuffix)
	if err := vfs.WriteFileSync(fsys, tmp, c.encode()); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path.Join(dir, checkpointName)); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}
