package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SaveReleaseProducts records the bouncer products release releaseID is
// primed for (sentry_release_products): those of releases.products that
// the bouncer holds. It replaces what was recorded, in one transaction.
// Reports read it to know which mirrors the redirector can offer the
// release's files from (a region row, the product's scheme).
func (s *Store) SaveReleaseProducts(ctx context.Context, releaseID int64, productIDs []int) error {
	ids := make([]int32, len(productIDs))
	for i, id := range productIDs {
		ids[i] = int32(id)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sentry_release_products WHERE release_id = $1 AND NOT product_id = ANY ($2)`,
			releaseID, ids); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sentry_release_products (release_id, product_id)
			SELECT $1, p FROM unnest($2::int[]) p ON CONFLICT DO NOTHING`, releaseID, ids)
		return err
	})
	return s.wrap("record the release's products", err)
}
