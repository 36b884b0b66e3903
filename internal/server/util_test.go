package server_test

import (
	"errors"
	"net/http"
)

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }

type hookFunc func(http.ResponseWriter, *http.Request)

func (f hookFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) { f(w, r) }
