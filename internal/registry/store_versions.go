package registry

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Stages of MLflow's (deprecated but still used) stage workflow.
var stages = []string{"None", "Staging", "Production", "Archived"}

// canonicalStage maps a stage name case-insensitively onto MLflow's
// spelling; "" when it is not a stage.
func canonicalStage(s string) string {
	for _, st := range stages {
		if strings.EqualFold(st, s) {
			return st
		}
	}
	return ""
}

type newVersion struct {
	name, source, runID, runLink, desc, user, status string
	tags                                             []Tag
}

func (s *store) createVersion(ctx context.Context, nv newVersion, now int64) (*ModelVersion, error) {
	var version int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, nv.name); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM (SELECT version FROM model_versions WHERE name = ? UNION ALL SELECT version FROM deleted_model_versions WHERE name = ?)`, nv.name, nv.name).Scan(&version); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, source, run_id, run_link, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nv.name, version, now, now, nv.desc, nv.user, nv.source, nv.runID, nv.runLink, nv.status); err != nil {
			return err
		}
		for _, t := range nv.tags {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)`, nv.name, version, t.Key, t.Value); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE registered_models SET last_updated_time = ? WHERE name = ?`, now, nv.name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.getVersion(ctx, s.db, nv.name, version)
}

func (s *store) getVersion(ctx context.Context, q querier, name string, version int64) (*ModelVersion, error) {
	v := ModelVersion{}
	var num int64
	err := q.QueryRowContext(ctx, `SELECT name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, run_link, status, status_message
		FROM model_versions WHERE name = ? AND version = ?`, name, version).
		Scan(&v.Name, &num, &v.CreationTimestamp, &v.LastUpdatedTimestamp, &v.Description, &v.UserID, &v.CurrentStage, &v.Source, &v.RunID, &v.RunLink, &v.Status, &v.StatusMessage)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if q.QueryRowContext(ctx, `SELECT COUNT(*) FROM deleted_model_versions WHERE name = ? AND version = ?`, name, version).Scan(&n) == nil && n > 0 {
			return nil, apiErr(CodeNotFound, "Model Version (name=%s, version=%d) %s", name, version, deletedPhrase)
		}
	}
	if err != nil {
		return nil, notFoundIfNoRows(err, "Model Version (name=%s, version=%d) not found", name, version)
	}
	v.Version = strconv.FormatInt(num, 10)
	if v.Tags, err = tagsOf(ctx, q, `SELECT key, value FROM model_version_tags WHERE name = ? AND version = ? ORDER BY key`, name, version); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ? ORDER BY alias`, name, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		v.Aliases = append(v.Aliases, a)
	}
	return &v, rows.Err()
}

func (s *store) searchVersions(ctx context.Context, filter string, orderBy []string, max, offset int) ([]ModelVersion, bool, error) {
	where, args, err := parseFilter(filter, versionFilter)
	if err != nil {
		return nil, false, err
	}
	order, err := parseOrderBy(orderBy, map[string]string{
		"name": "mv.name", "version_number": "mv.version", "creation_timestamp": "mv.creation_time",
		"last_updated_timestamp": "mv.last_updated_time", "timestamp": "mv.last_updated_time",
	}, "mv.name ASC, mv.version DESC")
	if err != nil {
		return nil, false, err
	}
	args = append(args, max+1, offset)
	rows, err := s.db.QueryContext(ctx, `SELECT mv.name, mv.version FROM model_versions mv WHERE `+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, false, err
	}
	type key struct {
		name    string
		version int64
	}
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.name, &k.version); err != nil {
			rows.Close()
			return nil, false, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	more := len(keys) > max
	if more {
		keys = keys[:max]
	}
	out := make([]ModelVersion, 0, len(keys))
	for _, k := range keys {
		v, err := s.getVersion(ctx, s.db, k.name, k.version)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *v)
	}
	return out, more, nil
}

func (s *store) updateVersion(ctx context.Context, name string, version int64, desc string, now int64) (*ModelVersion, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE model_versions SET description = ?, last_updated_time = ? WHERE name = ? AND version = ?`, desc, now, name, version)
	if err := affected(res, err, "Model Version (name=%s, version=%d) not found", name, version); err != nil {
		return nil, err
	}
	return s.getVersion(ctx, s.db, name, version)
}

func (s *store) setVersionStatus(ctx context.Context, name string, version int64, status string, now int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE model_versions SET status = ?, last_updated_time = ? WHERE name = ? AND version = ?`, status, now, name, version)
	return err
}

func (s *store) deleteVersion(ctx context.Context, name string, version int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM model_versions WHERE name = ? AND version = ?`, name, version)
		if err := affected(res, err, "Model Version (name=%s, version=%d) not found", name, version); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO deleted_model_versions (name, version, deletion_time) VALUES (?, ?, ?)`, name, version, time.Now().UnixMilli()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM registered_model_aliases WHERE name = ? AND version = ?`, name, version)
		return err
	})
}

func (s *store) setVersionTag(ctx context.Context, name string, version int64, key, value string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.getVersion(ctx, tx, name, version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)`, name, version, key, value)
		return err
	})
}

func (s *store) deleteVersionTag(ctx context.Context, name string, version int64, key string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.getVersion(ctx, tx, name, version); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?`, name, version, key)
		return affected(res, err, "No tag with name: %s in model version %s/%d", key, name, version)
	})
}

func (s *store) transitionStage(ctx context.Context, name string, version int64, stage string, archive bool, now int64) (*ModelVersion, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE model_versions SET current_stage = ?, last_updated_time = ? WHERE name = ? AND version = ?`, stage, now, name, version)
		if err := affected(res, err, "Model Version (name=%s, version=%d) not found", name, version); err != nil {
			return err
		}
		if archive && (stage == "Staging" || stage == "Production") {
			_, err = tx.ExecContext(ctx, `UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? WHERE name = ? AND version != ? AND current_stage = ?`, now, name, version, stage)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.getVersion(ctx, s.db, name, version)
}
