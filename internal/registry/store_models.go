package registry

import (
	"context"
	"database/sql"
	"strconv"
)

func (s *store) createModel(ctx context.Context, name, desc, user string, tags []Tag, now int64) (*RegisteredModel, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO registered_models (name, creation_time, last_updated_time, description, user_id) VALUES (?, ?, ?, ?, ?)`, name, now, now, desc, user)
		if isUniqueViolation(err) {
			return apiErr(CodeAlreadyExists, "Registered Model (name=%s) already exists.", name)
		}
		if err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)`, name, t.Key, t.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.getModel(ctx, s.db, name)
}

func (s *store) getModel(ctx context.Context, q querier, name string) (*RegisteredModel, error) {
	m := RegisteredModel{}
	err := q.QueryRowContext(ctx, `SELECT name, creation_time, last_updated_time, description, user_id FROM registered_models WHERE name = ?`, name).
		Scan(&m.Name, &m.CreationTimestamp, &m.LastUpdatedTimestamp, &m.Description, &m.UserID)
	if err != nil {
		return nil, notFoundIfNoRows(err, "Registered Model with name=%s not found", name)
	}
	if m.Tags, err = tagsOf(ctx, q, `SELECT key, value FROM registered_model_tags WHERE name = ? ORDER BY key`, name); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a Alias
		var v int64
		if err := rows.Scan(&a.Alias, &v); err != nil {
			return nil, err
		}
		a.Version = strconv.FormatInt(v, 10)
		m.Aliases = append(m.Aliases, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if m.LatestVersions, err = s.latestVersions(ctx, q, name, nil); err != nil {
		return nil, err
	}
	return &m, nil
}

func (s *store) searchModels(ctx context.Context, filter string, orderBy []string, max, offset int) ([]RegisteredModel, bool, error) {
	where, args, err := parseFilter(filter, modelFilter)
	if err != nil {
		return nil, false, err
	}
	order, err := parseOrderBy(orderBy, map[string]string{
		"name": "rm.name", "timestamp": "rm.last_updated_time", "last_updated_timestamp": "rm.last_updated_time", "creation_timestamp": "rm.creation_time",
	}, "rm.name ASC")
	if err != nil {
		return nil, false, err
	}
	args = append(args, max+1, offset)
	rows, err := s.db.QueryContext(ctx, `SELECT rm.name FROM registered_models rm WHERE `+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, false, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, false, err
		}
		names = append(names, n)
	}
	rows.Close()
	more := len(names) > max
	if more {
		names = names[:max]
	}
	out := make([]RegisteredModel, 0, len(names))
	for _, n := range names {
		m, err := s.getModel(ctx, s.db, n)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *m)
	}
	return out, more, nil
}

func (s *store) updateModel(ctx context.Context, name, desc string, now int64) (*RegisteredModel, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE registered_models SET description = ?, last_updated_time = ? WHERE name = ?`, desc, now, name)
	if err := affected(res, err, "Registered Model with name=%s not found", name); err != nil {
		return nil, err
	}
	return s.getModel(ctx, s.db, name)
}

func (s *store) renameModel(ctx context.Context, name, newName string, now int64) (*RegisteredModel, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE registered_models SET name = ?, last_updated_time = ? WHERE name = ?`, newName, now, name)
		if isUniqueViolation(err) {
			return apiErr(CodeAlreadyExists, "Registered Model (name=%s) already exists.", newName)
		}
		if err := affected(res, err, "Registered Model with name=%s not found", name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE deleted_model_versions SET name = ? WHERE name = ?`, newName, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.getModel(ctx, s.db, newName)
}

// deleteModel deletes a model with its versions; a model created again
// under the name starts at version 1, as in MLflow.
func (s *store) deleteModel(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM registered_models WHERE name = ?`, name)
		if err := affected(res, err, "Registered Model with name=%s not found", name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM deleted_model_versions WHERE name = ?`, name)
		return err
	})
}

func (s *store) setModelTag(ctx context.Context, name, key, value string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)`, name, key, value)
		return err
	})
}

func (s *store) deleteModelTag(ctx context.Context, name, key string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM registered_model_tags WHERE name = ? AND key = ?`, name, key)
		return affected(res, err, "No tag with name: %s in registered model %s", key, name)
	})
}

func modelExists(ctx context.Context, q querier, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM registered_models WHERE name = ?`, name).Scan(&one)
	return notFoundIfNoRows(err, "Registered Model with name=%s not found", name)
}

// latestVersions returns the newest version per stage, for the given
// stages or all of them.
func (s *store) latestVersions(ctx context.Context, q querier, name string, stages []string) ([]ModelVersion, error) {
	rows, err := q.QueryContext(ctx, `SELECT current_stage, MAX(version) FROM model_versions WHERE name = ? GROUP BY current_stage ORDER BY MAX(version)`, name)
	if err != nil {
		return nil, err
	}
	type sv struct {
		stage   string
		version int64
	}
	var found []sv
	for rows.Next() {
		var x sv
		if err := rows.Scan(&x.stage, &x.version); err != nil {
			rows.Close()
			return nil, err
		}
		found = append(found, x)
	}
	rows.Close()
	want := map[string]bool{}
	for _, st := range stages {
		want[canonicalStage(st)] = true
	}
	var out []ModelVersion
	for _, x := range found {
		if len(want) > 0 && !want[x.stage] {
			continue
		}
		v, err := s.getVersion(ctx, q, name, x.version)
		if err != nil {
			return nil, err
		}
		v.Aliases = nil // MLflow omits aliases in latest_versions
		out = append(out, *v)
	}
	return out, nil
}

func (s *store) setAlias(ctx context.Context, name, alias string, version int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.getVersion(ctx, tx, name, version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?)`, name, alias, version)
		return err
	})
}

func (s *store) deleteAlias(ctx context.Context, name, alias string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := modelExists(ctx, tx, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?`, name, alias)
		return err
	})
}

func (s *store) getAlias(ctx context.Context, name, alias string) (*ModelVersion, error) {
	if err := modelExists(ctx, s.db, name); err != nil {
		return nil, err
	}
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?`, name, alias).Scan(&v)
	if err == sql.ErrNoRows {
		// MLflow answers a missing alias with INVALID_PARAMETER_VALUE.
		return nil, apiErr(CodeInvalidParam, "Registered model alias %s not found.", alias)
	}
	if err != nil {
		return nil, err
	}
	return s.getVersion(ctx, s.db, name, v)
}

func affected(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apiErr(CodeNotFound, format, args...)
	}
	return nil
}
