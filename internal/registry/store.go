package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // pure-Go SQLite driver
)

// store keeps the embedded registry in one SQLite file. Every write runs in
// an IMMEDIATE transaction (the DSN's _txlock), so concurrent writers queue
// on SQLite's lock (busy_timeout) instead of losing updates; WAL mode lets
// readers run beside the writer, and a committed write survives kill -9.
type store struct {
	db *sql.DB
}

var migrations = []string{
	// 1: the registry and the tracking tables versions take metrics from.
	`CREATE TABLE registered_models (
		name TEXT PRIMARY KEY,
		creation_time INTEGER NOT NULL,
		last_updated_time INTEGER NOT NULL,
		description TEXT NOT NULL DEFAULT '',
		user_id TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE registered_model_tags (
		name TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE ON UPDATE CASCADE,
		key TEXT NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (name, key)
	);
	CREATE TABLE model_versions (
		name TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE ON UPDATE CASCADE,
		version INTEGER NOT NULL,
		creation_time INTEGER NOT NULL,
		last_updated_time INTEGER NOT NULL,
		description TEXT NOT NULL DEFAULT '',
		user_id TEXT NOT NULL DEFAULT '',
		current_stage TEXT NOT NULL DEFAULT 'None',
		source TEXT NOT NULL DEFAULT '',
		run_id TEXT NOT NULL DEFAULT '',
		run_link TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		status_message TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (name, version)
	);
	CREATE INDEX model_versions_run ON model_versions(run_id);
	CREATE TABLE model_version_tags (
		name TEXT NOT NULL,
		version INTEGER NOT NULL,
		key TEXT NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (name, version, key),
		FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE ON UPDATE CASCADE
	);
	CREATE INDEX model_version_tags_kv ON model_version_tags(key, value);
	CREATE TABLE registered_model_aliases (
		name TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE ON UPDATE CASCADE,
		alias TEXT NOT NULL,
		version INTEGER NOT NULL,
		PRIMARY KEY (name, alias)
	);
	CREATE TABLE experiments (
		experiment_id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		artifact_location TEXT NOT NULL,
		lifecycle_stage TEXT NOT NULL DEFAULT 'active',
		creation_time INTEGER NOT NULL,
		last_update_time INTEGER NOT NULL
	);
	CREATE TABLE runs (
		run_uuid TEXT PRIMARY KEY,
		name TEXT NOT NULL DEFAULT '',
		experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
		user_id TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		start_time INTEGER NOT NULL,
		end_time INTEGER NOT NULL DEFAULT 0,
		lifecycle_stage TEXT NOT NULL DEFAULT 'active',
		artifact_uri TEXT NOT NULL
	);
	CREATE TABLE metrics (
		run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
		key TEXT NOT NULL,
		value REAL NOT NULL,
		timestamp INTEGER NOT NULL,
		step INTEGER NOT NULL DEFAULT 0,
		seq INTEGER PRIMARY KEY AUTOINCREMENT
	);
	CREATE INDEX metrics_run_key ON metrics(run_uuid, key);
	CREATE TABLE params (
		run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
		key TEXT NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (run_uuid, key)
	);
	CREATE TABLE run_tags (
		run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
		key TEXT NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (run_uuid, key)
	);`,
	// 2: soft delete, as MLflow: a deleted version's number is never
	// reused, and asking for it says it was deleted.
	`CREATE TABLE deleted_model_versions (
		name TEXT NOT NULL,
		version INTEGER NOT NULL,
		deletion_time INTEGER NOT NULL,
		PRIMARY KEY (name, version)
	);`,
	// 3: registry webhooks, as MLflow's (3.x) webhooks API.
	`CREATE TABLE webhooks (
		webhook_id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		url TEXT NOT NULL,
		events TEXT NOT NULL,
		description TEXT NOT NULL DEFAULT '',
		secret TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL DEFAULT 'ACTIVE',
		creation_timestamp INTEGER NOT NULL,
		last_updated_timestamp INTEGER NOT NULL
	);`,
}

func openStore(path string) (*store, error) {
	// A relative path would read as a URI authority ("file:.mlcd/…").
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("registry db %s: %w", path, err)
	}
	path = abs
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: strings.Join([]string{
		"_pragma=busy_timeout(30000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	}, "&")}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open registry db %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &store{db: db}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry db %s: %w", path, err)
	}
	return s, nil
}

func (s *store) Close() error { return s.db.Close() }

func (s *store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this mlcd knows (%d)", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.Exec(migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if _, err := tx.Exec(`INSERT INTO schema_version (version) VALUES (?)`, i+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func notFoundIfNoRows(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return apiErr(CodeNotFound, format, args...)
	}
	return err
}

func tagsOf(ctx context.Context, q querier, query string, args ...any) ([]Tag, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tags []Tag
	for rows.Next() {
		var t Tag
		if err := rows.Scan(&t.Key, &t.Value); err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, rows.Err()
}
