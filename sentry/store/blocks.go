package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// DigestKey names the block digests of a file's contents: the manifest's
// algo and hash, the size, and the block size.
type DigestKey struct {
	Algo, Hash string
	Size       int64
	BlockSize  int64
}

// BlockDigests returns the stored digests of the keys that have them
// (sentry_block_digests): the SHA-256 of each block, 32 bytes each.
func (s *Store) BlockDigests(ctx context.Context, keys []DigestKey) (map[DigestKey][]byte, error) {
	out := make(map[DigestKey][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	algos, hashes, sizes, blocks := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		algos[i], hashes[i], sizes[i], blocks[i] = k.Algo, k.Hash, k.Size, k.BlockSize
	}
	rows, err := s.pool.Query(ctx, `
		SELECT d.algo, d.hash, d.size, d.block_size, d.digests
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS k(algo, hash, size, block_size)
		JOIN sentry_block_digests d USING (algo, hash, size, block_size)`, algos, hashes, sizes, blocks)
	if err != nil {
		return nil, s.wrap("read block digests", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k DigestKey
		var d []byte
		if err := rows.Scan(&k.Algo, &k.Hash, &k.Size, &k.BlockSize, &d); err != nil {
			return nil, s.wrap("read block digests", err)
		}
		out[k] = d
	}
	return out, s.wrap("read block digests", rows.Err())
}

// SaveBlockDigests stores the digests of one file's contents. Digests of
// the same contents saved already (another sentry, an earlier run) are
// kept: they are the same bytes.
func (s *Store) SaveBlockDigests(ctx context.Context, k DigestKey, digests []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sentry_block_digests (algo, hash, size, block_size, digests)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, k.Algo, k.Hash, k.Size, k.BlockSize, digests)
	return s.wrap(fmt.Sprintf("save the block digests of %s %.12s…", k.Algo, k.Hash), err)
}

// MismatchedFiles returns the paths of release files whose last check on
// the mirror found their bytes wrong (checksum_mismatch, too_large): a
// sampled check cannot clear that (the difference may be one block), so a
// prime verifies them in full.
func (s *Store) MismatchedFiles(ctx context.Context, releaseID int64, mirrorID int) (map[string]bool, error) {
	return s.paths(ctx, "read mismatched files", `SELECT path FROM sentry_file_state
		WHERE release_id = $1 AND mirror_id = $2 AND result IN ('checksum_mismatch', 'too_large')`, releaseID, mirrorID)
}

// paths runs a query of paths and returns them as a set.
func (s *Store) paths(ctx context.Context, what, sql string, args ...any) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	paths, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(what, err)
	}
	out := make(map[string]bool, len(paths))
	for _, p := range paths {
		out[p] = true
	}
	return out, nil
}
