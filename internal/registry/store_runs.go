package registry

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"strconv"
)

func (s *store) createExperiment(ctx context.Context, name, artifactRoot string, now int64) (string, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO experiments (name, artifact_location, creation_time, last_update_time) VALUES (?, '', ?, ?)`, name, now, now)
		if isUniqueViolation(err) {
			return apiErr(CodeAlreadyExists, "Experiment '%s' already exists.", name)
		}
		if err != nil {
			return err
		}
		id, _ = res.LastInsertId()
		_, err = tx.ExecContext(ctx, `UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?`, artifactRoot+"/"+strconv.FormatInt(id, 10), id)
		return err
	})
	return strconv.FormatInt(id, 10), err
}

func (s *store) getExperiment(ctx context.Context, where string, arg any) (*Experiment, error) {
	var e Experiment
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments WHERE `+where, arg).
		Scan(&id, &e.Name, &e.ArtifactLocation, &e.LifecycleStage, &e.CreationTime, &e.LastUpdateTime)
	if err != nil {
		return nil, notFoundIfNoRows(err, "Could not find experiment with %v", arg)
	}
	e.ExperimentID = strconv.FormatInt(id, 10)
	return &e, nil
}

func newRunID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *store) createRun(ctx context.Context, experimentID, name, user string, start int64, tags []Tag) (*Run, error) {
	exp, err := s.getExperiment(ctx, "experiment_id = ?", experimentID)
	if err != nil {
		return nil, err
	}
	id := newRunID()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, artifact_uri) VALUES (?, ?, ?, ?, 'RUNNING', ?, ?)`,
			id, name, exp.ExperimentID, user, start, exp.ArtifactLocation+"/"+id+"/artifacts"); err != nil {
			return err
		}
		return setRunTags(ctx, tx, id, tags)
	})
	if err != nil {
		return nil, err
	}
	return s.getRun(ctx, id)
}

func setRunTags(ctx context.Context, tx *sql.Tx, runID string, tags []Tag) error {
	for _, t := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO run_tags (run_uuid, key, value) VALUES (?, ?, ?)`, runID, t.Key, t.Value); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) runInfo(ctx context.Context, q querier, runID string) (*RunInfo, error) {
	var ri RunInfo
	var exp int64
	err := q.QueryRowContext(ctx, `SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?`, runID).
		Scan(&ri.RunID, &ri.RunName, &exp, &ri.UserID, &ri.Status, &ri.StartTime, &ri.EndTime, &ri.ArtifactURI, &ri.LifecycleStage)
	if err != nil {
		return nil, notFoundIfNoRows(err, "Run with id=%s not found", runID)
	}
	ri.RunUUID = ri.RunID
	ri.ExperimentID = strconv.FormatInt(exp, 10)
	return &ri, nil
}

func (s *store) updateRun(ctx context.Context, runID, status, name string, end int64) (*RunInfo, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.runInfo(ctx, tx, runID); err != nil {
			return err
		}
		if status != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?`, status, end, runID); err != nil {
				return err
			}
		}
		if name != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET name = ? WHERE run_uuid = ?`, name, runID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.runInfo(ctx, s.db, runID)
}

func (s *store) getRun(ctx context.Context, runID string) (*Run, error) {
	info, err := s.runInfo(ctx, s.db, runID)
	if err != nil {
		return nil, err
	}
	run := &Run{Info: *info}
	// The latest value of each metric: highest step, then timestamp, then
	// the order logged.
	rows, err := s.db.QueryContext(ctx, `SELECT key, value, timestamp, step FROM metrics m WHERE run_uuid = ? AND seq = (
		SELECT seq FROM metrics m2 WHERE m2.run_uuid = m.run_uuid AND m2.key = m.key ORDER BY step DESC, timestamp DESC, seq DESC LIMIT 1) ORDER BY key`, runID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var m Metric
		if err := rows.Scan(&m.Key, &m.Value, &m.Timestamp, &m.Step); err != nil {
			rows.Close()
			return nil, err
		}
		run.Data.Metrics = append(run.Data.Metrics, m)
	}
	rows.Close()
	prow, err := s.db.QueryContext(ctx, `SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key`, runID)
	if err != nil {
		return nil, err
	}
	for prow.Next() {
		var p Param
		if err := prow.Scan(&p.Key, &p.Value); err != nil {
			prow.Close()
			return nil, err
		}
		run.Data.Params = append(run.Data.Params, p)
	}
	prow.Close()
	if run.Data.Tags, err = tagsOf(ctx, s.db, `SELECT key, value FROM run_tags WHERE run_uuid = ? ORDER BY key`, runID); err != nil {
		return nil, err
	}
	return run, nil
}

func (s *store) logBatch(ctx context.Context, runID string, metrics []Metric, params []Param, tags []Tag) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.runInfo(ctx, tx, runID); err != nil {
			return err
		}
		for _, m := range metrics {
			if _, err := tx.ExecContext(ctx, `INSERT INTO metrics (run_uuid, key, value, timestamp, step) VALUES (?, ?, ?, ?, ?)`, runID, m.Key, m.Value, m.Timestamp, m.Step); err != nil {
				return err
			}
		}
		for _, p := range params {
			var old string
			err := tx.QueryRowContext(ctx, `SELECT value FROM params WHERE run_uuid = ? AND key = ?`, runID, p.Key).Scan(&old)
			if err == nil && old != p.Value {
				return apiErr(CodeInvalidParam, "Changing param values is not allowed. Param with key='%s' was already logged with value='%s' for run ID='%s'. Attempted logging new value '%s'.", p.Key, old, runID, p.Value)
			}
			if err == sql.ErrNoRows {
				if _, err := tx.ExecContext(ctx, `INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)`, runID, p.Key, p.Value); err != nil {
					return err
				}
			}
		}
		return setRunTags(ctx, tx, runID, tags)
	})
}

func (s *store) metricHistory(ctx context.Context, runID, key string, max, offset int) ([]Metric, bool, error) {
	if _, err := s.runInfo(ctx, s.db, runID); err != nil {
		return nil, false, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT key, value, timestamp, step FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step, timestamp, seq LIMIT ? OFFSET ?`, runID, key, max+1, offset)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		if err := rows.Scan(&m.Key, &m.Value, &m.Timestamp, &m.Step); err != nil {
			return nil, false, err
		}
		out = append(out, m)
	}
	more := len(out) > max
	if more {
		out = out[:max]
	}
	return out, more, rows.Err()
}
