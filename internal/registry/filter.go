package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// filterTarget says which columns a filter may name.
type filterTarget struct {
	// table alias of the row being filtered and its tag table
	alias, tagTable, tagJoin string
	allowRunID               bool
}

var (
	modelFilter   = filterTarget{alias: "rm", tagTable: "registered_model_tags", tagJoin: "t.name = rm.name"}
	versionFilter = filterTarget{alias: "mv", tagTable: "model_version_tags", tagJoin: "t.name = mv.name AND t.version = mv.version", allowRunID: true}
)

// clauseRE matches one comparison of MLflow's filter grammar as far as mlcd
// supports it: name, run_id or tags.<key> (optionally back-quoted), an
// operator, and a single- or double-quoted string.
var clauseRE = regexp.MustCompile(`^\s*(name|run_id|tags\.(?:` + "`[^`]+`" + `|[A-Za-z0-9_.\-/]+))\s*(=|!=|(?i:not\s+like)|(?i:ilike)|(?i:like))\s*('(?:[^']*)'|"(?:[^"]*)")\s*$`)

var andRE = regexp.MustCompile(`(?i)\s+and\s+`)

// parseFilter turns a filter string into a SQL condition with parameters.
// Values are always bound parameters, never spliced into SQL.
func parseFilter(filter string, target filterTarget) (string, []any, error) {
	filter = strings.TrimSpace(filter)
	if filter == "" {
		return "1=1", nil, nil
	}
	var conds []string
	var args []any
	for _, clause := range splitAnd(filter) {
		m := clauseRE.FindStringSubmatch(clause)
		if m == nil {
			return "", nil, apiErr(CodeInvalidParam, "unsupported filter %q: use name, run_id or tags.<key> with =, !=, LIKE or ILIKE and a quoted value, joined by AND", strings.TrimSpace(clause))
		}
		ident, op, value := m[1], strings.ToUpper(strings.Join(strings.Fields(m[2]), " ")), m[3][1:len(m[3])-1]
		sqlOp := map[string]string{"=": "=", "!=": "!=", "LIKE": "LIKE", "ILIKE": "LIKE", "NOT LIKE": "NOT LIKE"}[op]
		col := func(c string) string {
			if op == "ILIKE" {
				return "lower(" + c + ")"
			}
			return c
		}
		if op == "ILIKE" {
			value = strings.ToLower(value)
		}
		switch {
		case ident == "name":
			conds = append(conds, fmt.Sprintf("%s %s ?", col(target.alias+".name"), sqlOp))
			args = append(args, value)
		case ident == "run_id":
			if !target.allowRunID {
				return "", nil, apiErr(CodeInvalidParam, "unsupported filter key run_id for registered models")
			}
			conds = append(conds, fmt.Sprintf("%s %s ?", col(target.alias+".run_id"), sqlOp))
			args = append(args, value)
		default:
			key := strings.Trim(strings.TrimPrefix(ident, "tags."), "`")
			conds = append(conds, fmt.Sprintf("EXISTS (SELECT 1 FROM %s t WHERE %s AND t.key = ? AND %s %s ?)", target.tagTable, target.tagJoin, col("t.value"), sqlOp))
			args = append(args, key, value)
		}
	}
	return strings.Join(conds, " AND "), args, nil
}

// splitAnd splits on AND outside quotes.
func splitAnd(s string) []string {
	var parts []string
	var quote rune
	start := 0
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		default:
			if loc := andRE.FindStringIndex(s[i:]); loc != nil && loc[0] == 0 {
				parts = append(parts, s[start:i])
				i += loc[1] - 1
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// parseOrderBy maps MLflow order_by clauses onto SQL for the given columns.
func parseOrderBy(orderBy []string, allowed map[string]string, tiebreak string) (string, error) {
	var parts []string
	for _, ob := range orderBy {
		f := strings.Fields(ob)
		if len(f) == 0 || len(f) > 2 {
			return "", apiErr(CodeInvalidParam, "invalid order_by clause %q", ob)
		}
		col, ok := allowed[strings.ToLower(f[0])]
		if !ok {
			return "", apiErr(CodeInvalidParam, "invalid order_by key %q", f[0])
		}
		dir := "ASC"
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "ASC", "DESC":
				dir = strings.ToUpper(f[1])
			default:
				return "", apiErr(CodeInvalidParam, "invalid order_by direction %q", f[1])
			}
		}
		parts = append(parts, col+" "+dir)
	}
	parts = append(parts, tiebreak)
	return strings.Join(parts, ", "), nil
}

type pageToken struct {
	Offset int `json:"offset"`
}

func encodePageToken(offset int) string {
	data, _ := json.Marshal(pageToken{Offset: offset})
	return base64.StdEncoding.EncodeToString(data)
}

func decodePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	data, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		data, err = base64.URLEncoding.DecodeString(tok)
	}
	var pt pageToken
	if err != nil || json.Unmarshal(data, &pt) != nil || pt.Offset < 0 {
		return 0, apiErr(CodeInvalidParam, "invalid page_token %q", tok)
	}
	return pt.Offset, nil
}
